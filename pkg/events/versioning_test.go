package events_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func versioned(t *testing.T, version string, data any) *events.Event {
	t.Helper()
	e := newEvent(t, "user.created", data)
	e.SchemaVersion = version
	return e
}

func TestAcceptMajors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy events.MajorPolicy
	}{
		{"other majors are dead-lettered by default", events.DeadLetterOtherMajors},
		{"other majors are skipped: acked and counted", events.SkipOtherMajors},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := setupSub(t)
			var handled []string
			ch := make(chan string, 10)
			sub := subscribe(t, env, "majors", func(_ context.Context, e *events.Event) error {
				ch <- e.SchemaVersion
				return nil
			}, events.SubscriberConfig{AcceptMajors: []int{1, 3}, OtherMajors: tc.policy})
			for _, v := range []string{"1.0", "2.0", "1.7", "3.1", "2.5"} {
				env.publish(t, "auth.user.created", versioned(t, v, map[string]any{"a": 1}))
			}
			waitUntil(t, 10*time.Second, "all five settled", func() bool {
				s := sub.Stats()
				return s.Acked+s.DeadLettered+s.Skipped == 5
			})
			for len(ch) > 0 {
				handled = append(handled, <-ch)
			}
			if got := strings.Join(handled, ","); got != "1.0,1.7,3.1" {
				t.Errorf("handled %s", got)
			}
			s := sub.Stats()
			if tc.policy == events.SkipOtherMajors {
				if s.Skipped != 2 || s.DeadLettered != 0 || s.Acked != 3 {
					t.Errorf("stats %+v", s)
				}
				if info := consumerInfo(t, env, "majors"); info.NumAckPending != 0 || info.AckFloor.Stream != 5 {
					t.Errorf("skipped events not acked: %+v", info)
				}
				return
			}
			if s.Skipped != 0 || s.DeadLettered != 2 || s.Acked != 3 {
				t.Errorf("stats %+v", s)
			}
			m := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
			if r := m.Header.Get(events.HeaderDLQReason); r != "events: invalid schemaversion: major version 2 (2.0) is not one this consumer accepts (1, 3)" {
				t.Errorf("reason %q", r)
			}
			if d := m.Header.Get(events.HeaderDLQDeliveries); d != "1" {
				t.Errorf("dead-lettered after %s deliveries", d)
			}
		})
	}
}

func TestSubscriberConfigRefusesBadMajors(t *testing.T) {
	env := setupSub(t)
	ctx := ctxT(t, 5*time.Second)
	h := func(context.Context, *events.Event) error { return nil }
	for _, tc := range []struct {
		cfg   events.SubscriberConfig
		field string
	}{
		{events.SubscriberConfig{AcceptMajors: []int{1, -1}}, "acceptMajors[1]"},
		{events.SubscriberConfig{OtherMajors: 7}, "otherMajors"},
	} {
		_, err := events.SubscribeDurable(ctx, env.js, events.StreamAuth, "bad", h, tc.cfg)
		var verr *events.ValidationError
		if !errors.As(err, &verr) || verr.Field != tc.field {
			t.Errorf("%+v: %v, want an error for %s", tc.cfg, err, tc.field)
		}
	}
}

func TestSchemaMajor(t *testing.T) {
	for v, want := range map[string]int{"1.0": 1, "2.13": 2, "0.1": 0} {
		if got, err := events.SchemaMajor(v); err != nil || got != want {
			t.Errorf("%s: %d, %v", v, got, err)
		}
	}
	for _, v := range []string{"", "1", "a.b", "1.0.0", "9999999999.0"} {
		if _, err := events.SchemaMajor(v); !errors.Is(err, events.ErrValidation) {
			t.Errorf("%q: %v", v, err)
		}
	}
}

func TestVersionedHandler(t *testing.T) {
	type current struct{ Name string }
	type old struct{ First, Last string }
	var got []string
	h := events.Versioned(func(_ context.Context, e *events.Event, c current) error {
		got = append(got, e.SchemaVersion+":"+c.Name)
		return nil
	},
		events.Upgrade(1, func(o old) (current, error) {
			if o.First == "" {
				return current{}, errors.New("no first name")
			}
			return current{Name: o.First + " " + o.Last}, nil
		}),
		events.Current[current](2),
	)
	ctx := context.Background()
	for _, tc := range []struct {
		version string
		data    any
		err     string
	}{
		{"1.0", old{"Ada", "Lovelace"}, ""},
		{"1.4", map[string]any{"First": "Alan", "Last": "Turing", "Locale": "en"}, ""},
		{"2.0", current{"Grace Hopper"}, ""},
		{"1.0", old{}, "no first name"},
		{"3.0", current{"X"}, "events: invalid schemaversion: no decoder for major version 3 (3.0); the handler reads majors 1, 2"},
		{"2.0", []int{1}, "does not decode into"},
	} {
		err := h(ctx, versioned(t, tc.version, tc.data))
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s %v: %v", tc.version, tc.data, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, events.ErrPermanent) {
			t.Errorf("%s %v: %v, want a permanent error containing %q", tc.version, tc.data, err, tc.err)
		}
	}
	e := versioned(t, "1.0", old{"A", "B"})
	e.SchemaVersion = ""
	if err := h(ctx, e); !errors.Is(err, events.ErrPermanent) {
		t.Errorf("no schemaversion: %v", err)
	}
	if strings.Join(got, ",") != "1.0:Ada Lovelace,1.4:Alan Turing,2.0:Grace Hopper" {
		t.Errorf("handled %v", got)
	}
	for name, fn := range map[string]func(){
		"no decoder":     func() { events.Versioned(func(context.Context, *events.Event, current) error { return nil }) },
		"same major":     func() { events.Versioned(nil, events.Current[current](1), events.Current[current](1)) },
		"a nil function": func() { events.Versioned(nil, events.VersionDecoder[current]{Major: 1}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestValidationErrorWithPointer(t *testing.T) {
	err := &events.ValidationError{Field: "data", Pointer: "/user_id", Reason: "got number, want string"}
	if err.Error() != "events: invalid data: at /user_id: got number, want string" {
		t.Errorf("%q", err)
	}
	if !errors.Is(err, events.ErrValidation) || !errors.Is(err, events.ErrPermanent) {
		t.Error("not a validation error")
	}
}
