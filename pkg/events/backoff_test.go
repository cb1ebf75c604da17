package events

import (
	"errors"
	"testing"
	"time"
)

func TestBackoffKeepsTheScheduleWithJitter(t *testing.T) {
	nominal := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, want := range nominal {
		if got := nominalBackoff(DefaultRetryBackoff, DefaultMaxBackoff, i+1); got != want {
			t.Fatalf("nominal retry %d = %s, want %s", i+1, got, want)
		}
		lo, hi := jittered(want, DefaultRetryJitter, 0), jittered(want, DefaultRetryJitter, 0.999999)
		if lo != want*8/10 || hi < want*119/100 || hi > want*12/10 {
			t.Fatalf("retry %d spread [%s, %s], want [%s, %s)", i+1, lo, hi, want*8/10, want*12/10)
		}
		if got := jittered(want, 0, 0.7); got != want {
			t.Fatalf("no jitter: %s, want %s", got, want)
		}
	}
	if got := nominalBackoff(time.Second, 3*time.Second, 5); got != 3*time.Second {
		t.Fatalf("capped backoff = %s", got)
	}

	// The default publisher draws different pauses around the nominal one.
	p := &Publisher{opts: publisherOptions{backoff: time.Second, maxBackoff: DefaultMaxBackoff, jitter: DefaultRetryJitter}}
	seen := map[time.Duration]bool{}
	for range 100 {
		d := p.backoff(2)
		if d < 1600*time.Millisecond || d > 2400*time.Millisecond {
			t.Fatalf("backoff(2) = %s, outside 2s ±20%%", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Fatalf("only %d distinct pauses in 100: not jittered", len(seen))
	}
}

func TestWithRetryJitterValidates(t *testing.T) {
	for _, f := range []float64{-0.1, 1, 2} {
		var o publisherOptions
		err := WithRetryJitter(f)(&o)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "retryJitter" {
			t.Fatalf("WithRetryJitter(%v) = %v, want a ValidationError for retryJitter", f, err)
		}
	}
	var o publisherOptions
	if err := WithRetryJitter(0.5)(&o); err != nil || o.jitter != 0.5 {
		t.Fatalf("WithRetryJitter(0.5): %v, %v", err, o.jitter)
	}
}
