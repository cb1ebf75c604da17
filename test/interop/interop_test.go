// Package interop checks that package events and the CloudEvents Go SDK
// (github.com/cloudevents/sdk-go/v2 with its protocol/nats_jetstream/v2
// binding, v2.16.2) understand each other over JetStream, in both directions
// and both content modes, on an embedded nats-server. It also pins where the
// SDK deviates from the CloudEvents NATS protocol binding (header values not
// percent-encoded; no content-type in structured mode) and what our decoder
// makes of that; pkg/events/README.md ("Interoperability with the
// CloudEvents SDK") documents the same.
package interop

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/client"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

const (
	stream    = "INTEROP"
	dlqStream = "INTEROPDLQ"
	wait      = 10 * time.Second
)

// userCreated is the data of the test events: the seed's auth.user.created
// fields, plus a counter above 2^53 that a float64 would round.
type userCreated struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Status    string `json:"status"`
	Logins    int64  `json:"logins"`
}

var payload = userCreated{
	UserID: "42", Email: "zoë@example.com", FirstName: "Zoë", LastName: "O'Brien \"Bri\" 100%",
	Status: "active", Logins: 1<<53 + 1,
}

// attrs are an event's context attributes as a test expects them.
type attrs struct {
	ID, Source, Type, Subject, DataSchema, DataContentType string
	Time                                                   time.Time // zero: absent
	OrganizationID, SchemaVersion                          string    // "": absent
	Extensions                                             map[string]string
}

type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	ctx context.Context
}

func setup(t *testing.T) *env {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	nc := srv.Conn(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig(stream, "interop.>")); err != nil {
		t.Fatal(err)
	}
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig(dlqStream, "dlq.interop.>")); err != nil {
		t.Fatal(err)
	}
	return &env{nc: nc, js: js, ctx: ctx}
}

// sdkModes are the SDK's two ways of writing an event, chosen per send.
var sdkModes = []struct {
	name string
	ctx  func(context.Context) context.Context
}{
	{"binary", binding.WithForceBinary},
	{"structured", binding.WithForceStructured},
}

// sdkSend sends e with the SDK's JetStream sender on subject and returns the
// message as JetStream stored it, so that tests can look at the wire.
func (v *env) sdkSend(t *testing.T, subject string, mode func(context.Context) context.Context, e cloudevents.Event) *jetstream.RawStreamMsg {
	t.Helper()
	sender, err := cejs.NewSenderFromConn(v.nc, stream, subject, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClient(sender)
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Send(mode(v.ctx), e); !cloudevents.IsACK(res) {
		t.Fatalf("sdk-go send: %v", res)
	}
	s, err := v.js.Stream(v.ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(v.ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

var consumerSeq int

// ourReceive consumes subject with SubscribeDurable and returns the first
// event its handler gets.
func (v *env) ourReceive(t *testing.T, subject string, cfg events.SubscriberConfig) *events.Event {
	t.Helper()
	consumerSeq++
	cfg.FilterSubjects = []string{subject}
	got := make(chan *events.Event, 1)
	sub, err := events.SubscribeDurable(v.ctx, v.js, stream, fmt.Sprintf("ours%d", consumerSeq), func(_ context.Context, e *events.Event) error {
		select {
		case got <- e:
		default:
		}
		return nil
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(v.ctx) }()
	select {
	case e := <-got:
		return e
	case <-time.After(wait):
		t.Fatalf("SubscribeDurable received nothing on %s in %s (stats %+v)", subject, wait, sub.Stats())
	}
	return nil
}

// sdkReceive consumes subject with the SDK's JetStream consumer and client
// and returns the first event its receiver gets.
func (v *env) sdkReceive(t *testing.T, subject string) cloudevents.Event {
	t.Helper()
	cons, err := cejs.NewConsumerFromConn(v.nc, stream, subject, nil, []nats.SubOpt{nats.BindStream(stream), nats.DeliverAll()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClient(cons, client.WithBlockingCallback())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(v.ctx)
	got := make(chan cloudevents.Event, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.StartReceiver(ctx, func(e cloudevents.Event) {
			select {
			case got <- e:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sdk-go receiver: %v", err)
		}
	}()
	select {
	case e := <-got:
		return e
	case <-time.After(wait):
		t.Fatalf("sdk-go received nothing on %s in %s", subject, wait)
	}
	return cloudevents.Event{}
}

// checkOurs compares a decoded event with what the test expects.
func checkOurs(t *testing.T, got *events.Event, want attrs) {
	t.Helper()
	for _, f := range []struct{ name, got, want string }{
		{"id", got.ID, want.ID},
		{"source", got.Source, want.Source},
		{"type", got.Type, want.Type},
		{"subject", got.Subject, want.Subject},
		{"dataschema", got.DataSchema, want.DataSchema},
		{"datacontenttype", got.DataContentType, want.DataContentType},
		{"organizationid", got.OrganizationID, want.OrganizationID},
		{"schemaversion", got.SchemaVersion, want.SchemaVersion},
	} {
		if f.got != f.want {
			t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
	if !got.Timestamp.Equal(want.Time) {
		t.Errorf("time: got %v, want %v", got.Timestamp, want.Time)
	}
	if !maps.Equal(got.Extensions, want.Extensions) {
		t.Errorf("extensions: got %q, want %q", got.Extensions, want.Extensions)
	}
}

// checkSDK compares an event the SDK received with what the test expects.
func checkSDK(t *testing.T, got cloudevents.Event, want attrs) {
	t.Helper()
	if got.SpecVersion() != "1.0" {
		t.Errorf("specversion: got %q", got.SpecVersion())
	}
	for _, f := range []struct{ name, got, want string }{
		{"id", got.ID(), want.ID},
		{"source", got.Source(), want.Source},
		{"type", got.Type(), want.Type},
		{"subject", got.Subject(), want.Subject},
		{"dataschema", got.DataSchema(), want.DataSchema},
		{"datacontenttype", got.DataContentType(), want.DataContentType},
	} {
		if f.got != f.want {
			t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
	if !got.Time().Equal(want.Time) {
		t.Errorf("time: got %v, want %v", got.Time(), want.Time)
	}
	ext := map[string]string{}
	for k, v := range got.Extensions() {
		ext[k] = fmt.Sprint(v)
	}
	wantExt := maps.Clone(want.Extensions)
	if wantExt == nil {
		wantExt = map[string]string{}
	}
	// The SDK has no platform attributes: they are extensions to it.
	if want.OrganizationID != "" {
		wantExt["organizationid"] = want.OrganizationID
	}
	if want.SchemaVersion != "" {
		wantExt["schemaversion"] = want.SchemaVersion
	}
	if !maps.Equal(ext, wantExt) {
		t.Errorf("extensions: got %q, want %q", ext, wantExt)
	}
}

// sdkCase is an event the SDK sends, and what our decoder must make of it
// in each mode.
type sdkCase struct {
	name  string
	event func() cloudevents.Event
	// want is what arrives in structured mode, where every value is a JSON
	// string and nothing is lost.
	want attrs
	// binary overrides want for binary mode, where the SDK writes values
	// into headers as they are and our decoder applies the binding's
	// percent-decoding and quoted-string rules to them.
	binary func(*attrs)
	// data is the data the event carries (nil: none).
	data *userCreated
}

var when = time.Date(2026, 11, 30, 6, 30, 15, 123456789, time.UTC)

func sdkEvent(id, source, typ string) cloudevents.Event {
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource(source)
	e.SetType(typ)
	return e
}

func withData(e cloudevents.Event) cloudevents.Event {
	if err := e.SetData(cloudevents.ApplicationJSON, payload); err != nil {
		panic(err)
	}
	return e
}

var sdkCases = []sdkCase{
	{
		name: "every attribute, platform extensions, data",
		event: func() cloudevents.Event {
			e := sdkEvent("6f1c1e4e-4f3a-4d0e-9a53-0b1b6d1f2a10", "auth-service", "auth.user.created")
			e.SetSubject("user-42")
			e.SetTime(when)
			e.SetDataSchema("https://schemas.example.com/auth/user-created.json")
			e.SetExtension("organizationid", "org-1")
			e.SetExtension("schemaversion", "1.2")
			e.SetExtension("region", "eu1")
			e.SetExtension("priority", 5) // an integer extension: its string form arrives
			e.SetExtension("sampled", true)
			return withData(e)
		},
		want: attrs{
			ID: "6f1c1e4e-4f3a-4d0e-9a53-0b1b6d1f2a10", Source: "auth-service", Type: "auth.user.created",
			Subject: "user-42", Time: when, DataSchema: "https://schemas.example.com/auth/user-created.json",
			DataContentType: "application/json", OrganizationID: "org-1", SchemaVersion: "1.2",
			Extensions: map[string]string{"region": "eu1", "priority": "5", "sampled": "true"},
		},
		data: &payload,
	},
	{
		name: "no time",
		event: func() cloudevents.Event {
			return withData(sdkEvent("b3d8c1a0-9d2e-4c57-8f0e-3e1f6a7b8c9d", "auth-service", "auth.user.created"))
		},
		want: attrs{ID: "b3d8c1a0-9d2e-4c57-8f0e-3e1f6a7b8c9d", Source: "auth-service", Type: "auth.user.created",
			DataContentType: "application/json"},
		data: &payload,
	},
	{
		name: "non-UUID id, no organizationid",
		event: func() cloudevents.Event {
			e := sdkEvent("order-7/42", "/shop/orders", "com.example.order.placed")
			e.SetTime(when)
			return withData(e)
		},
		want: attrs{ID: "order-7/42", Source: "/shop/orders", Type: "com.example.order.placed", Time: when,
			DataContentType: "application/json"},
		data: &payload,
	},
	{
		name:  "required attributes only, no data",
		event: func() cloudevents.Event { return sdkEvent("1", "s", "t") },
		want:  attrs{ID: "1", Source: "s", Type: "t"},
	},
	{
		// The SDK writes header values as they are. Space, '"' and non-ASCII
		// arrive intact; a '%' not followed by two hex digits is kept.
		name: "space, quote, non-ASCII, lone percent",
		event: func() cloudevents.Event {
			e := sdkEvent("id with space", "auth-service", "auth.user.created")
			e.SetTime(when)
			e.SetSubject(`Zoë said "hi" to 東京`)
			e.SetExtension("organizationid", "org 1")
			e.SetExtension("note", "100% sure, 50%off")
			return withData(e)
		},
		want: attrs{ID: "id with space", Source: "auth-service", Type: "auth.user.created", Time: when,
			Subject: `Zoë said "hi" to 東京`, DataContentType: "application/json", OrganizationID: "org 1",
			Extensions: map[string]string{"note": "100% sure, 50%off"}},
		data: &payload,
	},
	{
		// What cannot round-trip through a producer that does not encode:
		// "%41" reads as the escape it looks like, and a whole value in
		// double quotes as an RFC 7230 quoted-string.
		name: "percent escape and quoted-string lookalikes",
		event: func() cloudevents.Event {
			e := sdkEvent("id%41", "auth-service", "auth.user.created")
			e.SetSubject(`"quoted"`)
			e.SetExtension("code", "%7Bx%7D")
			return e
		},
		want: attrs{ID: "id%41", Source: "auth-service", Type: "auth.user.created", Subject: `"quoted"`,
			Extensions: map[string]string{"code": "%7Bx%7D"}},
		binary: func(a *attrs) {
			a.ID = "idA"
			a.Subject = "quoted"
			a.Extensions = map[string]string{"code": "{x}"}
		},
	},
}

// TestSDKToOurs: the SDK's JetStream sender publishes, SubscribeDurable and
// Decode read.
func TestSDKToOurs(t *testing.T) {
	v := setup(t)
	for i, c := range sdkCases {
		for _, mode := range sdkModes {
			t.Run(c.name+"/"+mode.name, func(t *testing.T) {
				subject := fmt.Sprintf("interop.sdk.c%d.%s", i, mode.name)
				raw := v.sdkSend(t, subject, mode.ctx, c.event())
				want := c.want
				if mode.name == "binary" {
					checkSDKBinaryWire(t, raw, c.event())
					if c.binary != nil {
						c.binary(&want)
					}
				} else {
					checkSDKStructuredWire(t, raw)
				}

				decoded, err := events.DecodeParts(raw.Header, raw.Data)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				checkOurs(t, decoded, want)

				got := v.ourReceive(t, subject, events.SubscriberConfig{})
				checkOurs(t, got, want)
				checkOurData(t, got, c.data)
			})
		}
	}
}

// checkSDKBinaryWire pins the first deviation: in binary mode the SDK
// writes every attribute value into its ce- header as it is (fmt.Sprint,
// time as RFC 3339), where the binding requires percent-encoding; and it
// sets no Nats-Msg-Id.
func checkSDKBinaryWire(t *testing.T, raw *jetstream.RawStreamMsg, e cloudevents.Event) {
	t.Helper()
	if got := raw.Header.Get("ce-specversion"); got != "1.0" {
		t.Errorf("ce-specversion header: %q", got)
	}
	if got := raw.Header.Get("ce-id"); got != e.ID() {
		t.Errorf("the SDK's ce-id header is %q, the id is %q: expected the value unencoded", got, e.ID())
	}
	if e.Subject() != "" && raw.Header.Get("ce-subject") != e.Subject() {
		t.Errorf("the SDK's ce-subject header is %q, the subject is %q: expected the value unencoded", raw.Header.Get("ce-subject"), e.Subject())
	}
	if got := raw.Header.Get(events.HeaderMsgID); got != "" {
		t.Errorf("the SDK set Nats-Msg-Id %q; expected none", got)
	}
}

// checkSDKStructuredWire pins the second deviation: in structured mode the
// SDK sends the JSON body with no header at all, so no content-type.
func checkSDKStructuredWire(t *testing.T, raw *jetstream.RawStreamMsg) {
	t.Helper()
	if len(raw.Header) != 0 {
		t.Errorf("the SDK's structured message has headers %v; expected none (no content-type)", raw.Header)
	}
	if !strings.HasPrefix(string(raw.Data), `{"specversion":"1.0"`) {
		t.Errorf("structured body: %s", raw.Data)
	}
}

// checkOurData decodes the data with DataAs into the struct and as a map.
func checkOurData(t *testing.T, e *events.Event, want *userCreated) {
	t.Helper()
	if want == nil {
		if e.Data != nil {
			t.Errorf("data: got %s, want none", e.Data)
		}
		return
	}
	got, err := events.DataAs[userCreated](e)
	if err != nil {
		t.Fatalf("DataAs: %v (data %s)", err, e.Data)
	}
	if got != *want {
		t.Errorf("DataAs: got %+v, want %+v", got, *want)
	}
	m, err := e.DataMap()
	if err != nil {
		t.Fatalf("DataMap: %v", err)
	}
	if n := fmt.Sprint(m["logins"]); n != "9007199254740993" {
		t.Errorf("DataMap logins: got %s, want 9007199254740993 (no float64 rounding)", n)
	}
}

// TestSDKTextData: data in another content type reaches Data as its bytes
// (base64-decoded from the SDK's structured data_base64); DataAs refuses it,
// naming the content type.
func TestSDKTextData(t *testing.T) {
	v := setup(t)
	for _, mode := range sdkModes {
		t.Run(mode.name, func(t *testing.T) {
			subject := "interop.sdk.text." + mode.name
			e := sdkEvent("text-1", "printer", "com.example.line")
			if err := e.SetData("text/plain", []byte("hello, 世界")); err != nil {
				t.Fatal(err)
			}
			v.sdkSend(t, subject, mode.ctx, e)
			got := v.ourReceive(t, subject, events.SubscriberConfig{})
			checkOurs(t, got, attrs{ID: "text-1", Source: "printer", Type: "com.example.line", DataContentType: "text/plain"})
			if string(got.Data) != "hello, 世界" {
				t.Errorf("data: got %q", got.Data)
			}
			_, err := events.DataAs[userCreated](got)
			var verr *events.ValidationError
			if !errors.As(err, &verr) || verr.Field != "datacontenttype" {
				t.Errorf("DataAs on text/plain: got %v, want a *ValidationError for field datacontenttype", err)
			}
		})
	}
}

// TestSDKStrictValidation: an SDK event without the platform's attributes is
// accepted by default (above) and dead-lettered by a subscriber that asks
// for the platform's rules.
func TestSDKStrictValidation(t *testing.T) {
	v := setup(t)
	for _, mode := range sdkModes {
		t.Run(mode.name, func(t *testing.T) {
			subject := "interop.sdk.strict." + mode.name
			// A UUID id and a time: only organizationid (and schemaversion)
			// are missing.
			e := sdkEvent("5d9f8e7c-1b2a-4c3d-8e4f-6a5b4c3d2e1f", "auth-service", "auth.user.created")
			e.SetTime(when)
			v.sdkSend(t, subject, mode.ctx, withData(e))

			consumerSeq++
			called := make(chan struct{}, 1)
			sub, err := events.SubscribeDurable(v.ctx, v.js, stream, fmt.Sprintf("strict%d", consumerSeq), func(context.Context, *events.Event) error {
				called <- struct{}{}
				return nil
			}, events.SubscriberConfig{FilterSubjects: []string{subject}, StrictValidation: true})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Stop(v.ctx) }()
			dlq, err := v.js.Stream(v.ctx, dlqStream)
			if err != nil {
				t.Fatal(err)
			}
			var dl *jetstream.RawStreamMsg
			deadline := time.Now().Add(wait)
			for dl == nil && time.Now().Before(deadline) {
				dl, _ = dlq.GetLastMsgForSubject(v.ctx, events.DeadLetterSubject(subject))
				if dl == nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if dl == nil {
				t.Fatalf("no dead letter on %s (stats %+v)", events.DeadLetterSubject(subject), sub.Stats())
			}
			reason := dl.Header.Get(events.HeaderDLQReason)
			if !strings.Contains(reason, "organizationid") {
				t.Errorf("dead-letter reason %q does not name the missing field organizationid", reason)
			}
			select {
			case <-called:
				t.Error("the handler was called for an event StrictValidation refuses")
			default:
			}
			// The subscription counts the dead letter once the original is
			// terminated, just after the dead letter is stored.
			s := sub.Stats()
			for ; s.DeadLettered == 0 && time.Now().Before(deadline); s = sub.Stats() {
				time.Sleep(10 * time.Millisecond)
			}
			if s.DeadLettered != 1 || s.Acked != 0 {
				t.Errorf("stats %+v, want 1 dead-lettered, 0 acked", s)
			}
		})
	}
}

// ourCase is an event our Publisher sends (it passes the platform's rules),
// and what the SDK makes of it.
type ourCase struct {
	name  string
	event func(t *testing.T) *events.Event
	want  attrs
	// binary overrides want for binary mode: the SDK does not
	// percent-decode, so it sees what our encoder had to escape as escapes.
	binary func(*attrs)
}

const ourID = "0b6f3c2e-8d4a-4f1b-9c7e-5a2d1e0f9b8c"

func ourEvent(t *testing.T, mutate func(*events.Event)) *events.Event {
	t.Helper()
	e, err := events.NewEvent("auth.user.created", "auth-service", "org-1", when, map[string]interface{}{
		"user_id": payload.UserID, "email": payload.Email, "first_name": payload.FirstName,
		"last_name": payload.LastName, "status": payload.Status, "logins": payload.Logins,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.ID = ourID
	if mutate != nil {
		mutate(e)
	}
	return e
}

var ourCases = []ourCase{
	{
		name: "NewEvent with a map, every attribute",
		event: func(t *testing.T) *events.Event {
			return ourEvent(t, func(e *events.Event) {
				e.Subject = "user-42"
				e.DataSchema = "https://schemas.example.com/auth/user-created.json"
				e.Extensions = map[string]string{"region": "eu1", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
			})
		},
		want: attrs{ID: ourID, Source: "auth-service", Type: "auth.user.created", Subject: "user-42", Time: when,
			DataSchema: "https://schemas.example.com/auth/user-created.json", DataContentType: "application/json",
			OrganizationID: "org-1", SchemaVersion: "1.0",
			Extensions: map[string]string{"region": "eu1", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
	},
	{
		name: "NewEvent with a struct, minimal",
		event: func(t *testing.T) *events.Event {
			e, err := events.NewEvent("auth.user.created", "auth-service", "org-1", when, payload)
			if err != nil {
				t.Fatal(err)
			}
			e.ID = ourID
			return e
		},
		want: attrs{ID: ourID, Source: "auth-service", Type: "auth.user.created", Time: when,
			DataContentType: "application/json", OrganizationID: "org-1", SchemaVersion: "1.0"},
	},
	{
		name: "space, percent, quote, non-ASCII",
		event: func(t *testing.T) *events.Event {
			return ourEvent(t, func(e *events.Event) {
				e.Subject = `Zoë said "hi" 100%`
				e.OrganizationID = "org 1"
				e.Extensions = map[string]string{"city": "東京"}
			})
		},
		want: attrs{ID: ourID, Source: "auth-service", Type: "auth.user.created", Subject: `Zoë said "hi" 100%`, Time: when,
			DataContentType: "application/json", OrganizationID: "org 1", SchemaVersion: "1.0",
			Extensions: map[string]string{"city": "東京"}},
		binary: func(a *attrs) {
			a.Subject = "Zo%C3%AB%20said%20%22hi%22%20100%25"
			a.OrganizationID = "org%201"
			a.Extensions = map[string]string{"city": "%E6%9D%B1%E4%BA%AC"}
		},
	},
}

// TestOursToSDK: our Publisher publishes, the SDK's JetStream consumer and
// client receive.
func TestOursToSDK(t *testing.T) {
	v := setup(t)
	for i, c := range ourCases {
		for _, mode := range []struct {
			name string
			opts []events.PublisherOption
		}{{"binary", nil}, {"structured", []events.PublisherOption{events.WithStructuredMode()}}} {
			t.Run(c.name+"/"+mode.name, func(t *testing.T) {
				pub, err := events.NewPublisher(v.nc, mode.opts...)
				if err != nil {
					t.Fatal(err)
				}
				subject := fmt.Sprintf("interop.ours.c%d.%s", i, mode.name)
				// A new ID per publish: the ID is also the Nats-Msg-Id, and
				// JetStream would drop a second event with the same one as a
				// duplicate.
				e := c.event(t)
				e.ID = uuid.NewString()
				if err := pub.Publish(v.ctx, subject, e); err != nil {
					t.Fatal(err)
				}
				if err := pub.Close(); err != nil {
					t.Fatal(err)
				}
				want := c.want
				want.ID = e.ID
				if mode.name == "binary" && c.binary != nil {
					c.binary(&want)
				}
				got := v.sdkReceive(t, subject)
				checkSDK(t, got, want)
				var data userCreated
				if err := got.DataAs(&data); err != nil {
					t.Fatalf("sdk-go DataAs: %v (data %s)", err, got.Data())
				}
				if data != payload {
					t.Errorf("sdk-go DataAs: got %+v, want %+v", data, payload)
				}

				// And back: ours reads its own message exactly, in either mode.
				back := v.ourReceive(t, subject, events.SubscriberConfig{})
				want = c.want
				want.ID = e.ID
				checkOurs(t, back, want)
				checkOurData(t, back, &payload)
			})
		}
	}
}

// TestOursAsyncToSDK: PublishAsync, the seed's publisher call, reaches the
// SDK too.
func TestOursAsyncToSDK(t *testing.T) {
	v := setup(t)
	pub, err := events.NewPublisher(v.nc)
	if err != nil {
		t.Fatal(err)
	}
	e := ourEvent(t, nil)
	if err := pub.PublishAsync(v.ctx, "interop.ours.async", e); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	got := v.sdkReceive(t, "interop.ours.async")
	checkSDK(t, got, attrs{ID: ourID, Source: "auth-service", Type: "auth.user.created", Time: when,
		DataContentType: "application/json", OrganizationID: "org-1", SchemaVersion: "1.0"})
}

// TestSDKReceiverAcksBeforeHandler pins what an SDK consumer of our events
// should know: the binding's Message.Finish does nothing, and nats.go's
// legacy subscription acks each message as soon as the binding's callback
// has handed it to the client, so the ack is sent while the handler is
// still running (at most once), where SubscribeDurable acks after the
// handler returned nil (at least once).
func TestSDKReceiverAcksBeforeHandler(t *testing.T) {
	v := setup(t)
	const subject, durable = "interop.ours.ackorder", "sdkack"
	pub, err := events.NewPublisher(v.nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(v.ctx, subject, ourEvent(t, nil)); err != nil {
		t.Fatal(err)
	}
	cons, err := cejs.NewConsumerFromConn(v.nc, stream, subject, nil, []nats.SubOpt{
		nats.BindStream(stream), nats.Durable(durable), nats.DeliverAll(), nats.AckExplicit()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClient(cons)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := v.nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(v.ctx)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.StartReceiver(ctx, func(cloudevents.Event) {
			close(entered)
			<-release
		})
	}()
	released := false
	defer func() {
		if !released {
			close(release)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sdk-go receiver: %v", err)
		}
	}()
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the SDK handler was not called")
	}
	acked := false
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && !acked; time.Sleep(20 * time.Millisecond) {
		// A push consumer: the legacy API reads its info.
		ci, err := legacy.ConsumerInfo(stream, durable)
		if err != nil {
			t.Fatal(err)
		}
		acked = ci.AckFloor.Stream == 1 && ci.NumAckPending == 0
	}
	close(release)
	released = true
	if !acked {
		t.Fatal("the message was not acked while the SDK handler was still running; the README says it is")
	}
}
