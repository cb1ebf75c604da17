package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// NewEvent's data is encoding/json's output byte for byte, sealed so that
// Validate skips json.Valid for it; any change to the bytes breaks the seal
// and Validate checks the data again; the seal is invisible to
// reflect.DeepEqual.
func TestSealedData(t *testing.T) {
	at := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	values := []any{
		map[string]interface{}{"user_id": "u1", "email": "a<b>&c@example.com", "n": 1 << 60},
		struct {
			A string  `json:"a"`
			B float64 `json:"b,omitempty"`
		}{A: "\u2028 é"},
		[]int{1, 2, 3},
		"text",
		json.RawMessage(` { "a" : [1, 2] } `),
	}
	for _, v := range values {
		e, err := NewEvent("user.created", "auth", "org", at, v)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(v)
		if !bytes.Equal(e.Data, want) || len(e.Data) != len(want) {
			t.Fatalf("data %q, json.Marshal gives %q", e.Data, want)
		}
		if !sealed(e.Data) {
			t.Fatalf("NewEvent's data %q is not sealed", e.Data)
		}
		// DeepEqual sees the same event as one built by hand.
		same := *e
		same.Data = append(json.RawMessage(nil), want...)
		if !reflect.DeepEqual(*e, same) || sealed(same.Data) {
			t.Fatalf("DeepEqual differs, or a copy is sealed")
		}
	}

	invalid := func(e *Event) bool {
		var verr *ValidationError
		return errors.As(e.Validate(), &verr) && verr.Field == "data"
	}
	newEvent := func() *Event {
		e, err := NewEvent("user.created", "auth", "org", at, map[string]any{"a": "b"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Changed in place: the seal no longer matches, Validate scans.
	e := newEvent()
	e.Data[len(e.Data)-1] = ','
	if sealed(e.Data) || !invalid(e) {
		t.Fatalf("data changed in place to %q: sealed %v, Validate %v", e.Data, sealed(e.Data), e.Validate())
	}
	// Cut short (the capacity still holds the seal, after a data byte).
	e = newEvent()
	e.Data = e.Data[:len(e.Data)-1]
	if sealed(e.Data) || !invalid(e) {
		t.Fatalf("data cut to %q: sealed %v, Validate %v", e.Data, sealed(e.Data), e.Validate())
	}
	// Appended to (into the seal's room).
	e = newEvent()
	e.Data = append(e.Data, '}')
	if sealed(e.Data) || !invalid(e) {
		t.Fatalf("data appended to %q: sealed %v, Validate %v", e.Data, sealed(e.Data), e.Validate())
	}
	// Replaced with bytes of the same length.
	e = newEvent()
	e.Data = json.RawMessage(`{"a":"b"`) // one byte short of {"a":"b"}
	e.Data = append(e.Data, ' ')
	if sealed(e.Data) || !invalid(e) {
		t.Fatalf("replaced data %q: sealed %v, Validate %v", e.Data, sealed(e.Data), e.Validate())
	}
	// A JSON null is no data, unsealed nothing.
	if e, err := NewEvent("t", "s", "o", at, json.RawMessage("null")); err != nil || e.Data != nil {
		t.Fatalf("null data: %v %v", e.Data, err)
	}
}

// BenchmarkNewEventValidate is what a publish pays before encoding: build
// the event (marshal the seed's map) and validate it.
func BenchmarkNewEventValidate(b *testing.B) {
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		e, err := NewEvent("auth.user.created", "auth-service", "org-1", at, map[string]interface{}{
			"user_id": "a4c1f0a2-3b7e-4d5f-9a1b-6c2d8e0f1a2b", "email": "jane.doe@example.com",
			"first_name": "Jane", "last_name": "Doe", "status": "active",
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
