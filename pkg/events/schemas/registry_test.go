package schemas_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

const userCreatedV1 = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["user_id", "email", "first_name", "last_name", "status"],
  "properties": {
    "user_id": {"type": "string", "minLength": 1},
    "email": {"type": "string", "minLength": 1},
    "first_name": {"type": "string"},
    "last_name": {"type": "string"},
    "status": {"type": "string", "minLength": 1}
  }
}`

func ctxT(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	srv *eventstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func setup(t *testing.T) env {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	return env{srv: srv, nc: srv.Conn(t), js: js}
}

func register(t *testing.T, js jetstream.JetStream, typ, version, schema string, opts ...schemas.Option) {
	t.Helper()
	if err := schemas.Register(ctxT(t, 10*time.Second), js, schemas.Record{Type: typ, Version: version, Schema: json.RawMessage(schema), Owner: "test"}, opts...); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, js jetstream.JetStream, opts ...schemas.Option) *schemas.Registry {
	t.Helper()
	r, err := schemas.Open(ctxT(t, 10*time.Second), js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func userCreated(t testing.TB, version string, data any) *events.Event {
	t.Helper()
	e, err := events.NewEvent("user.created", "auth-service", "org-1", time.Now(), data)
	if err != nil {
		t.Fatal(err)
	}
	e.SchemaVersion = version
	return e
}

func validUser() map[string]any {
	return map[string]any{"user_id": "u-1", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "status": "active"}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPublisherRefusesInvalidDataBeforeSending(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	pub, err := events.NewPublisher(env.nc, events.WithDataValidator(open(t, env.js)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	ctx := ctxT(t, 10*time.Second)

	wrongType := validUser()
	wrongType["user_id"] = 42
	missing := validUser()
	delete(missing, "email")
	for _, tc := range []struct {
		name    string
		data    map[string]any
		pointer string
		reason  string
		message string
	}{
		{"a property of the wrong type", wrongType, "/user_id", "got number, want string", "events: invalid data: at /user_id: got number, want string"},
		{"a missing required property", missing, "", "missing property 'email'", "events: invalid data: missing property 'email'"},
	} {
		for _, call := range []struct {
			name string
			fn   func(e *events.Event) error
		}{
			{"Publish", func(e *events.Event) error { return pub.Publish(ctx, "auth.user.created", e) }},
			{"PublishAck", func(e *events.Event) error { _, err := pub.PublishAck(ctx, "auth.user.created", e); return err }},
			{"PublishAsync", func(e *events.Event) error { return pub.PublishAsync(ctx, "auth.user.created", e) }},
		} {
			err := call.fn(userCreated(t, "1.0", tc.data))
			var verr *events.ValidationError
			if !errors.As(err, &verr) || verr.Field != "data" || verr.Pointer != tc.pointer || verr.Reason != tc.reason {
				t.Errorf("%s, %s: err %#v, want field data, pointer %q, reason %q", tc.name, call.name, err, tc.pointer, tc.reason)
				continue
			}
			if err.Error() != tc.message || !errors.Is(err, events.ErrValidation) || !errors.Is(err, events.ErrPermanent) {
				t.Errorf("%s, %s: %q (ErrValidation %v)", tc.name, call.name, err, errors.Is(err, events.ErrValidation))
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := eventstest.StreamMsgs(t, env.js, events.StreamAuth); n != 0 {
		t.Fatalf("%d invalid events reached the stream", n)
	}
}

func TestPublisherSendsValidDataWithDataSchema(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	reg := open(t, env.js)
	ctx := ctxT(t, 10*time.Second)
	for i, opts := range [][]events.PublisherOption{
		{events.WithDataValidator(reg)},
		{events.WithDataValidator(reg), events.WithStructuredMode()},
	} {
		pub, err := events.NewPublisher(env.nc, opts...)
		if err != nil {
			t.Fatal(err)
		}
		e := userCreated(t, "1.0", validUser())
		if err := pub.Publish(ctx, "auth.user.created", e); err != nil {
			t.Fatal(err)
		}
		if e.DataSchema != "" {
			t.Errorf("the caller's event was modified: dataschema %q", e.DataSchema)
		}
		own := userCreated(t, "1.0", validUser())
		own.DataSchema = "https://schemas.example.com/user-created.json"
		if err := pub.PublishAsync(ctx, "auth.user.created", own); err != nil {
			t.Fatal(err)
		}
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
		for j, want := range []string{"urn:events:schema:user.created:1.0", own.DataSchema} {
			m := eventstest.GetMsg(t, env.js, events.StreamAuth, uint64(2*i+j+1))
			got, err := events.DecodeParts(m.Header, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if got.DataSchema != want {
				t.Errorf("publisher %d, event %d: dataschema %q, want %q", i, j, got.DataSchema, want)
			}
		}
	}
}

func TestUnknownTypes(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	ctx := ctxT(t, 10*time.Second)
	unknown := userCreated(t, "9.0", map[string]any{"anything": true})

	allow := open(t, env.js)
	if uri, err := allow.ValidateData(unknown); err != nil || uri != "" {
		t.Errorf("allow: %q, %v", uri, err)
	}
	pub, err := events.NewPublisher(env.nc, events.WithDataValidator(allow))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, "auth.user.created", unknown); err != nil {
		t.Fatalf("allow: %v", err)
	}
	m := eventstest.GetMsg(t, env.js, events.StreamAuth, 1)
	if got := m.Header.Get(events.HeaderDataSchema); got != "" {
		t.Errorf("an unvalidated event names the schema %q", got)
	}

	reject := open(t, env.js, schemas.WithUnknownTypes(schemas.RejectUnknown))
	_, err = reject.ValidateData(unknown)
	var verr *events.ValidationError
	if !errors.As(err, &verr) || verr.Field != "schemaversion" || !strings.Contains(err.Error(), `no schema for type "user.created" version "9.0" in registry EVENT_SCHEMAS`) {
		t.Errorf("reject: %v", err)
	}
	if _, err := reject.ValidateData(userCreated(t, "1.0", validUser())); err != nil {
		t.Errorf("reject, known type: %v", err)
	}
}

func TestMissingBucket(t *testing.T) {
	env := setup(t)
	ctx := ctxT(t, 10*time.Second)
	_, err := schemas.Open(ctx, env.js, schemas.WithUnknownTypes(schemas.RejectUnknown))
	if !errors.Is(err, events.ErrNotFound) || !strings.Contains(err.Error(), "EVENT_SCHEMAS") {
		t.Fatalf("reject with no bucket: %v", err)
	}
	// Allowing unknown types, the bucket may come later.
	reg := open(t, env.js, schemas.WithPollInterval(50*time.Millisecond))
	bad := userCreated(t, "1.0", map[string]any{"user_id": 1})
	if _, err := reg.ValidateData(bad); err != nil {
		t.Fatalf("no bucket yet: %v", err)
	}
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	eventually(t, "the new bucket's schema applies", func() bool {
		_, err := reg.ValidateData(bad)
		return errors.Is(err, events.ErrValidation)
	})
}

func TestSchemaChangesReachRunningPublisherAndSubscriber(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	pubReg, subReg := open(t, env.js), open(t, env.js)
	pub, err := events.NewPublisher(env.nc, events.WithDataValidator(pubReg))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	handledCh := make(chan string, 1000)
	sub, err := events.SubscribeDurable(ctxT(t, time.Minute), env.js, events.StreamAuth, "audit", func(_ context.Context, e *events.Event) error {
		handledCh <- e.ID
		return nil
	}, events.SubscriberConfig{DataValidator: subReg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	ctx := ctxT(t, 30*time.Second)

	withLocale := func(locale any) *events.Event {
		d := validUser()
		d["locale"] = locale
		return userCreated(t, "1.1", d)
	}
	// 1.1 has no schema yet: allowed.
	if err := pub.Publish(ctx, "auth.user.created", withLocale(5)); err != nil {
		t.Fatalf("before 1.1 exists: %v", err)
	}
	// A new version put in the bucket.
	v11 := strings.Replace(userCreatedV1, `"status": {"type": "string", "minLength": 1}`, `"status": {"type": "string", "minLength": 1}, "locale": {"type": "string"}`, 1)
	register(t, env.js, "user.created", "1.1", v11)
	eventually(t, "the publisher refuses a numeric locale under 1.1", func() bool {
		err := pub.Publish(ctx, "auth.user.created", withLocale(5))
		var verr *events.ValidationError
		return errors.As(err, &verr) && verr.Pointer == "/locale"
	})
	// The subscriber's registry has it too: invalid data injected past the
	// publisher (raw NATS) is dead-lettered with the validator's reason.
	eventually(t, "the subscriber dead-letters a numeric locale", func() bool {
		raw := withLocale(7)
		msg, err := events.Encode(raw, events.ModeBinary)
		if err != nil {
			t.Fatal(err)
		}
		msg.Subject = "auth.user.created"
		if _, err := env.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return sub.Stats().DeadLettered > 0
	})
	dlq := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
	if reason := dlq.Header.Get(events.HeaderDLQReason); !strings.Contains(reason, "events: invalid data: at /locale: got number, want string") ||
		!strings.Contains(reason, "urn:events:schema:user.created:1.1") {
		t.Errorf("dead-letter reason %q", reason)
	}
	// A changed schema: the locale may now be a number.
	register(t, env.js, "user.created", "1.1", strings.Replace(v11, `"locale": {"type": "string"}`, `"locale": {"type": ["string", "number"]}`, 1))
	eventually(t, "the publisher accepts a numeric locale after the change", func() bool {
		return pub.Publish(ctx, "auth.user.created", withLocale(5)) == nil
	})
	eventually(t, "the subscriber accepts a numeric locale after the change", func() bool {
		_, err := subReg.ValidateData(withLocale(7))
		return err == nil
	})
	// Deleted: 1.1 is unknown again, and allowed.
	register(t, env.js, "user.created", "1.1", v11)
	eventually(t, "string locale only again", func() bool {
		_, err := pubReg.ValidateData(withLocale(5))
		return err != nil
	})
	if err := schemas.Unregister(ctx, env.js, "user.created", "1.1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "1.1 is gone from both registries", func() bool {
		_, perr := pubReg.ValidateData(withLocale(5))
		_, serr := subReg.ValidateData(withLocale(5))
		return perr == nil && serr == nil
	})
	// 1.0 still applies all along.
	bad := userCreated(t, "1.0", map[string]any{"user_id": "u-1"})
	if _, err := subReg.ValidateData(bad); err == nil {
		t.Error("1.0 stopped applying")
	}
	// Valid data still reaches the handler.
	valid := userCreated(t, "1.0", validUser())
	if err := pub.Publish(ctx, "auth.user.created", valid); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case id := <-handledCh:
			done = id == valid.ID
		case <-ctx.Done():
			t.Fatal("the valid event was not handled")
		}
	}
	if err := schemas.Unregister(ctx, env.js, "user.created", "1.1"); err != nil {
		t.Errorf("unregistering twice: %v", err)
	}
}

func TestGarbageInTheBucketIsABrokenSchemaOfItsKeyOnly(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	ctx := ctxT(t, 10*time.Second)
	kv, err := env.js.KeyValue(ctx, schemas.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.PutString(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	put(schemas.Key("not.json", "1.0"), "{not json")
	put(schemas.Key("other.key", "1.0"), `{"type":"user.created","version":"1.0","schema":{}}`)
	put(schemas.Key("bad.schema", "1.0"), `{"type":"bad.schema","version":"1.0","schema":{"type":5}}`)
	put(schemas.Key("array.value", "1.0"), `[1,2,3]`)
	put("nonsense", "whatever")
	put("x.1.0.=ZZ", "whatever")

	reg := open(t, env.js)
	event := func(typ string) *events.Event {
		e, err := events.NewEvent(typ, "test", "org-1", time.Now(), map[string]any{"a": 1})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for typ, want := range map[string]string{
		"not.json":    `the value under key "not.json.1.0" is not a schema record`,
		"other.key":   `the record under key "other.key.1.0" is for type "user.created" version "1.0"`,
		"bad.schema":  "the schema does not compile",
		"array.value": "is not a schema record",
	} {
		uri, err := reg.ValidateData(event(typ))
		var verr *events.ValidationError
		if !errors.As(err, &verr) || verr.Field != "dataschema" || !strings.Contains(err.Error(), want) || uri != schemas.URI(typ, "1.0") {
			t.Errorf("%s: %q, %v; want a broken schema: %s", typ, uri, err, want)
		}
	}
	// Other types are unaffected.
	if _, err := reg.ValidateData(userCreated(t, "1.0", validUser())); err != nil {
		t.Errorf("user.created: %v", err)
	}
	if _, err := reg.ValidateData(userCreated(t, "1.0", map[string]any{})); err == nil {
		t.Error("user.created: empty data accepted")
	}
	// Garbage arriving through the watch, and then repaired.
	put(schemas.Key("user.created", "1.0"), "garbage")
	eventually(t, "garbage replaces the schema", func() bool {
		_, err := reg.ValidateData(userCreated(t, "1.0", validUser()))
		return err != nil && strings.Contains(err.Error(), "not a schema record")
	})
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	eventually(t, "the schema is repaired", func() bool {
		_, err := reg.ValidateData(userCreated(t, "1.0", validUser()))
		return err == nil
	})
}

func TestNonJSONAndMissingData(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	reg := open(t, env.js)
	e := userCreated(t, "1.0", nil)
	if _, err := reg.ValidateData(e); err == nil || !strings.Contains(err.Error(), "got null, want object") {
		t.Errorf("no data: %v", err)
	}
	e.DataContentType, e.Data = "text/plain", []byte("hello")
	var verr *events.ValidationError
	if _, err := reg.ValidateData(e); !errors.As(err, &verr) || verr.Field != "datacontenttype" {
		t.Errorf("text data: %v", err)
	}
	e.DataContentType, e.Data = "application/json; charset=utf-8", []byte(`{"user_id":"u-1"} x`)
	if _, err := reg.ValidateData(e); !errors.As(err, &verr) || verr.Field != "data" || !strings.Contains(err.Error(), "not valid JSON") {
		t.Errorf("trailing garbage: %v", err)
	}
}

func TestRegisterChecksTheRecord(t *testing.T) {
	env := setup(t)
	ctx := ctxT(t, 10*time.Second)
	for _, tc := range []struct {
		rec   schemas.Record
		field string
	}{
		{schemas.Record{Version: "1.0", Schema: json.RawMessage(`{}`)}, "type"},
		{schemas.Record{Type: "a.b", Version: "1", Schema: json.RawMessage(`{}`)}, "version"},
		{schemas.Record{Type: "a.b", Version: "01.0", Schema: json.RawMessage(`{}`)}, "version"},
		{schemas.Record{Type: "a.b", Version: "1.0"}, "schema"},
		{schemas.Record{Type: "a.b", Version: "1.0", Schema: json.RawMessage(`{"type":5}`)}, "schema"},
		{schemas.Record{Type: "a.b", Version: "1.0", Schema: json.RawMessage(`{"$ref":"https://example.com/x.json"}`)}, "schema"},
		{schemas.Record{Type: "a.b", Version: "1.0", Schema: json.RawMessage(`{}`), Compatibility: "Forward"}, "compatibility"},
	} {
		err := schemas.Register(ctx, env.js, tc.rec)
		var verr *events.ValidationError
		if !errors.As(err, &verr) || verr.Field != tc.field {
			t.Errorf("%+v: %v, want an error for %s", tc.rec, err, tc.field)
		}
	}
	if err := schemas.Register(ctx, env.js, schemas.Record{Type: "a.b", Version: "1.0", Schema: json.RawMessage(`{}`)}, schemas.WithBucket("bad name")); err == nil {
		t.Error("a bad bucket name was accepted")
	}
	if _, err := env.js.KeyValue(ctx, schemas.DefaultBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("refused records created the bucket: %v", err)
	}
	// Another bucket, and the stored record.
	if err := schemas.Register(ctx, env.js, schemas.Record{Type: "odd type/x", Version: "2.3", Schema: json.RawMessage(`{"type":"object"}`)}, schemas.WithBucket("MY_SCHEMAS")); err != nil {
		t.Fatal(err)
	}
	kv, err := env.js.KeyValue(ctx, "MY_SCHEMAS")
	if err != nil {
		t.Fatal(err)
	}
	got, err := kv.Get(ctx, schemas.Key("odd type/x", "2.3"))
	if err != nil {
		t.Fatal(err)
	}
	var rec schemas.Record
	if err := json.Unmarshal(got.Value(), &rec); err != nil || rec.Type != "odd type/x" || rec.Version != "2.3" || rec.Compatibility != schemas.Backward {
		t.Errorf("stored %s (%v)", got.Value(), err)
	}
	reg := open(t, env.js, schemas.WithBucket("MY_SCHEMAS"))
	e := userCreated(t, "2.3", []int{1})
	e.Type = "odd type/x"
	if _, err := reg.ValidateData(e); err == nil || !strings.Contains(err.Error(), "got array, want object") {
		t.Errorf("escaped key: %v", err)
	}
}

func TestSeveralFailuresAreListed(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	reg := open(t, env.js)
	_, err := reg.ValidateData(userCreated(t, "1.0", map[string]any{"email": 1, "first_name": 2, "last_name": 3, "status": 4}))
	var verr *events.ValidationError
	want := "missing property 'user_id'; at /email: got number, want string; at /first_name: got number, want string (and 2 more)"
	if !errors.As(err, &verr) || verr.Pointer != "" || verr.Reason != want {
		t.Errorf("%v\nwant reason %s", err, want)
	}
}
