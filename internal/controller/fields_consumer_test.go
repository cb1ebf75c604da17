package controller

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// consumerFields is the field table of jetstream.ConsumerConfig: every field
// is declared by an EventConsumer.
var consumerFields = map[string]jsField{
	"Name":               {path: "spec.durableName", def: "metadata.name", inPlace: "no: JetStream cannot rename a consumer (its name is its durable name)"},
	"Durable":            {path: "spec.durableName", def: "metadata.name", inPlace: "no: JetStream cannot rename a consumer"},
	"Description":        {path: "spec.description", def: "none", inPlace: "yes"},
	"DeliverPolicy":      {path: "spec.deliverPolicy", def: "All", inPlace: "no: JetStream cannot change where a consumer starts"},
	"OptStartSeq":        {path: "spec.optStartSeq", def: "none (ByStartSequence only)", inPlace: "no: part of where the consumer starts"},
	"OptStartTime":       {path: "spec.optStartTime", def: "none (ByStartTime only)", inPlace: "no: part of where the consumer starts"},
	"AckPolicy":          {path: "spec.ackPolicy", def: "Explicit", inPlace: "no: JetStream cannot change a consumer's ack policy"},
	"AckWait":            {path: "spec.ackWait", def: "10s", inPlace: "yes"},
	"MaxDeliver":         {path: "spec.maxDeliver", def: "3", inPlace: "yes"},
	"BackOff":            {path: "spec.backoff", def: "none", inPlace: "yes"},
	"FilterSubject":      {path: "spec.filterSubjects", def: "all of the stream's", inPlace: "yes (a single filterSubjects entry is sent as filter_subject)"},
	"FilterSubjects":     {path: "spec.filterSubjects", def: "all of the stream's", inPlace: "yes"},
	"ReplayPolicy":       {path: "spec.replayPolicy", def: "Instant", inPlace: "no: JetStream cannot change a consumer's replay policy"},
	"RateLimit":          {path: "spec.rateLimitBps", def: "unlimited (push only)", inPlace: "yes"},
	"SampleFrequency":    {path: "spec.sampleFrequency", def: "no sampling", inPlace: "yes"},
	"MaxWaiting":         {path: "spec.maxWaiting", def: "JetStream's (512; pull only)", inPlace: "no: JetStream refuses to change max waiting"},
	"MaxAckPending":      {path: "spec.maxAckPending", def: "JetStream's (1000)", inPlace: "yes"},
	"HeadersOnly":        {path: "spec.headersOnly", def: "false", inPlace: "yes"},
	"MaxRequestBatch":    {path: "spec.maxRequestBatch", def: "unlimited (pull only)", inPlace: "yes"},
	"MaxRequestExpires":  {path: "spec.maxRequestExpires", def: "unlimited (pull only)", inPlace: "yes"},
	"MaxRequestMaxBytes": {path: "spec.maxRequestMaxBytes", def: "unlimited (pull only)", inPlace: "yes"},
	"InactiveThreshold":  {path: "spec.inactiveThreshold", def: "never", inPlace: "yes"},
	"Replicas":           {path: "spec.replicas", def: "the stream's", inPlace: "yes"},
	"MemoryStorage":      {path: "spec.memoryStorage", def: "false", inPlace: "no: JetStream cannot move a consumer's state between file and memory"},
	"Metadata":           {path: "spec.metadata", def: "none (plus the operator's ownership keys)", inPlace: "yes"},
	"PauseUntil":         {path: "spec.pauseUntil", def: "not paused", inPlace: "yes (through JetStream's pause and resume API)"},
	"PriorityPolicy":     {path: "spec.priorityPolicy", def: "None", inPlace: "yes (pull only)"},
	"PinnedTTL":          {path: "spec.pinnedTTL", def: "JetStream's (2m; Pinned only)", inPlace: "yes"},
	"PriorityGroups":     {path: "spec.priorityGroups", def: "none (required with a priority policy)", inPlace: "yes"},
	"DeliverSubject":     {path: "spec.deliverSubject", def: "none: a pull consumer", inPlace: "yes between subjects; no between pull and push (set or unset)"},
	"DeliverGroup":       {path: "spec.deliverGroup", def: "none (push only)", inPlace: "yes"},
	"FlowControl":        {path: "spec.flowControl", def: "false (push only)", inPlace: "no: JetStream cannot change flow control"},
	"IdleHeartbeat":      {path: "spec.idleHeartbeat", def: "none (push only)", inPlace: "no: JetStream cannot change the idle heartbeat"},
}

func init() {
	fieldTables = append(fieldTables, fieldTable{
		config: reflect.TypeFor[jetstream.ConsumerConfig](), resource: &eventsv1.EventConsumer{}, fields: consumerFields,
	})
}

// consumerRoundTrip is one round-trip case: spec sets a non-default value
// of the field; check says whether JetStream's INFO holds it.
type consumerRoundTrip struct {
	spec  func(s *eventsv1.EventConsumerSpec)
	check func(c jetstream.ConsumerConfig) bool
}

// rtPause is the pause of the pauseUntil case: an hour ahead, in whole
// seconds as metav1.Time stores it.
var rtPause = time.Now().Add(time.Hour).UTC().Truncate(time.Second)

var consumerRoundTrips = map[string]consumerRoundTrip{
	"Name": {func(s *eventsv1.EventConsumerSpec) { s.DurableName = "RT_NAME" },
		func(c jetstream.ConsumerConfig) bool { return c.Name == "RT_NAME" }},
	"Durable": {func(s *eventsv1.EventConsumerSpec) { s.DurableName = "RT_DURABLE" },
		func(c jetstream.ConsumerConfig) bool { return c.Durable == "RT_DURABLE" }},
	"Description": {func(s *eventsv1.EventConsumerSpec) { s.Description = "round trip" },
		func(c jetstream.ConsumerConfig) bool { return c.Description == "round trip" }},
	"DeliverPolicy": {func(s *eventsv1.EventConsumerSpec) { s.DeliverPolicy = eventsv1.DeliverNew },
		func(c jetstream.ConsumerConfig) bool { return c.DeliverPolicy == jetstream.DeliverNewPolicy }},
	"OptStartSeq": {func(s *eventsv1.EventConsumerSpec) {
		s.DeliverPolicy, s.OptStartSeq = eventsv1.DeliverByStartSequence, ptr.To[int64](5)
	}, func(c jetstream.ConsumerConfig) bool { return c.OptStartSeq == 5 }},
	"OptStartTime": {func(s *eventsv1.EventConsumerSpec) {
		s.DeliverPolicy, s.OptStartTime = eventsv1.DeliverByStartTime, &metav1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	}, func(c jetstream.ConsumerConfig) bool {
		return c.OptStartTime != nil && c.OptStartTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	}},
	"AckPolicy": {func(s *eventsv1.EventConsumerSpec) { s.AckPolicy = eventsv1.AckAll },
		func(c jetstream.ConsumerConfig) bool { return c.AckPolicy == jetstream.AckAllPolicy }},
	"AckWait": {func(s *eventsv1.EventConsumerSpec) { s.AckWait = "45s" },
		func(c jetstream.ConsumerConfig) bool { return c.AckWait == 45*time.Second }},
	"MaxDeliver": {func(s *eventsv1.EventConsumerSpec) { s.MaxDeliver = 7 },
		func(c jetstream.ConsumerConfig) bool { return c.MaxDeliver == 7 }},
	"BackOff": {func(s *eventsv1.EventConsumerSpec) { s.Backoff = []eventsv1.Duration{"1s", "2s"} },
		func(c jetstream.ConsumerConfig) bool {
			return slices.Equal(c.BackOff, []time.Duration{time.Second, 2 * time.Second})
		}},
	"FilterSubject": {func(s *eventsv1.EventConsumerSpec) { s.FilterSubjects = []string{"orders.one"} },
		func(c jetstream.ConsumerConfig) bool { return c.FilterSubject == "orders.one" }},
	"FilterSubjects": {func(s *eventsv1.EventConsumerSpec) { s.FilterSubjects = []string{"orders.a", "orders.b.*"} },
		func(c jetstream.ConsumerConfig) bool {
			return slices.Equal(c.FilterSubjects, []string{"orders.a", "orders.b.*"})
		}},
	"ReplayPolicy": {func(s *eventsv1.EventConsumerSpec) { s.ReplayPolicy = eventsv1.ReplayOriginal },
		func(c jetstream.ConsumerConfig) bool { return c.ReplayPolicy == jetstream.ReplayOriginalPolicy }},
	"RateLimit": {func(s *eventsv1.EventConsumerSpec) { s.DeliverSubject, s.RateLimitBps = "deliver.rate", 8000 },
		func(c jetstream.ConsumerConfig) bool { return c.RateLimit == 8000 }},
	"SampleFrequency": {func(s *eventsv1.EventConsumerSpec) { s.SampleFrequency = "30%" },
		func(c jetstream.ConsumerConfig) bool { return c.SampleFrequency == "30%" }},
	"MaxWaiting": {func(s *eventsv1.EventConsumerSpec) { s.MaxWaiting = ptr.To[int32](64) },
		func(c jetstream.ConsumerConfig) bool { return c.MaxWaiting == 64 }},
	"MaxAckPending": {func(s *eventsv1.EventConsumerSpec) { s.MaxAckPending = ptr.To[int32](50) },
		func(c jetstream.ConsumerConfig) bool { return c.MaxAckPending == 50 }},
	"HeadersOnly": {func(s *eventsv1.EventConsumerSpec) { s.HeadersOnly = true },
		func(c jetstream.ConsumerConfig) bool { return c.HeadersOnly }},
	"MaxRequestBatch": {func(s *eventsv1.EventConsumerSpec) { s.MaxRequestBatch = 10 },
		func(c jetstream.ConsumerConfig) bool { return c.MaxRequestBatch == 10 }},
	"MaxRequestExpires": {func(s *eventsv1.EventConsumerSpec) { s.MaxRequestExpires = "30s" },
		func(c jetstream.ConsumerConfig) bool { return c.MaxRequestExpires == 30*time.Second }},
	"MaxRequestMaxBytes": {func(s *eventsv1.EventConsumerSpec) { s.MaxRequestMaxBytes = 4096 },
		func(c jetstream.ConsumerConfig) bool { return c.MaxRequestMaxBytes == 4096 }},
	"InactiveThreshold": {func(s *eventsv1.EventConsumerSpec) { s.InactiveThreshold = "24h" },
		func(c jetstream.ConsumerConfig) bool { return c.InactiveThreshold == 24*time.Hour }},
	"Replicas": {func(s *eventsv1.EventConsumerSpec) { s.Replicas = 1 },
		func(c jetstream.ConsumerConfig) bool { return c.Replicas == 1 }},
	"MemoryStorage": {func(s *eventsv1.EventConsumerSpec) { s.MemoryStorage = true },
		func(c jetstream.ConsumerConfig) bool { return c.MemoryStorage }},
	"Metadata": {func(s *eventsv1.EventConsumerSpec) { s.Metadata = map[string]string{"team": "analytics"} },
		func(c jetstream.ConsumerConfig) bool { return c.Metadata["team"] == "analytics" }},
	"PauseUntil": {func(s *eventsv1.EventConsumerSpec) { s.PauseUntil = &metav1.Time{Time: rtPause} },
		func(c jetstream.ConsumerConfig) bool { return c.PauseUntil != nil && c.PauseUntil.Equal(rtPause) }},
	"PriorityPolicy": {func(s *eventsv1.EventConsumerSpec) {
		s.PriorityPolicy, s.PriorityGroups = eventsv1.PriorityPrioritized, []string{"jobs"}
	}, func(c jetstream.ConsumerConfig) bool { return c.PriorityPolicy == jetstream.PriorityPolicyPrioritized }},
	"PinnedTTL": {func(s *eventsv1.EventConsumerSpec) {
		s.PriorityPolicy, s.PriorityGroups, s.PinnedTTL = eventsv1.PriorityPinned, []string{"jobs"}, "30s"
	}, func(c jetstream.ConsumerConfig) bool {
		return c.PriorityPolicy == jetstream.PriorityPolicyPinned && c.PinnedTTL == 30*time.Second
	}},
	"PriorityGroups": {func(s *eventsv1.EventConsumerSpec) {
		s.PriorityPolicy, s.PriorityGroups = eventsv1.PriorityOverflow, []string{"jobs", "batch/2"}
	}, func(c jetstream.ConsumerConfig) bool {
		return slices.Equal(c.PriorityGroups, []string{"jobs", "batch/2"})
	}},
	"DeliverSubject": {func(s *eventsv1.EventConsumerSpec) { s.DeliverSubject = "deliver.rt" },
		func(c jetstream.ConsumerConfig) bool { return c.DeliverSubject == "deliver.rt" }},
	"DeliverGroup": {func(s *eventsv1.EventConsumerSpec) { s.DeliverSubject, s.DeliverGroup = "deliver.group", "workers" },
		func(c jetstream.ConsumerConfig) bool { return c.DeliverGroup == "workers" }},
	"FlowControl": {func(s *eventsv1.EventConsumerSpec) {
		s.DeliverSubject, s.FlowControl, s.IdleHeartbeat = "deliver.fc", true, "5s"
	}, func(c jetstream.ConsumerConfig) bool { return c.FlowControl }},
	"IdleHeartbeat": {func(s *eventsv1.EventConsumerSpec) { s.DeliverSubject, s.IdleHeartbeat = "deliver.hb", "2s" },
		func(c jetstream.ConsumerConfig) bool { return c.IdleHeartbeat == 2*time.Second }},
}

// TestConsumerFieldsRoundTrip: for every declared field of
// jetstream.ConsumerConfig, an EventConsumer with a non-default value passes
// admission (the real API server, its defaults applied), the value arrives
// in JetStream (read back from the server's INFO), and the next reconcile
// finds the consumer in sync (Ready=True InSync: no further write).
func TestConsumerFieldsRoundTrip(t *testing.T) {
	c := apiClient(t)
	_, r, js, evs := ordersFixture(t)
	ctx := context.Background()
	for field, decl := range consumerFields {
		if decl.path == "" {
			continue
		}
		rt, ok := consumerRoundTrips[field]
		if !ok {
			t.Errorf("%s is declared at %s but has no round-trip case", field, decl.path)
			continue
		}
		t.Run(field, func(t *testing.T) {
			evc := &eventsv1.EventConsumer{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "rt-" + strings.ToLower(field)},
				Spec:       eventsv1.EventConsumerSpec{StreamRef: eventsv1.LocalObjectReference{Name: evs.Name}},
			}
			rt.spec(&evc.Spec)
			if err := c.Create(ctx, evc); err != nil {
				t.Fatalf("admission refused the EventConsumer: %v", err)
			}
			t.Cleanup(func() { _ = c.Delete(context.Background(), evc) })
			if err := c.Get(ctx, client.ObjectKeyFromObject(evc), evc); err != nil { // with the API server's defaults
				t.Fatal(err)
			}
			if _, err := r.reconcileConsumer(ctx, js, evc, evs); err != nil {
				t.Fatalf("create: %v", err)
			}
			info, err := admin.GetConsumerInfo(ctx, js, "ORDERS", evc.JetStreamName())
			if err != nil {
				t.Fatal(err)
			}
			if !rt.check(info.Config) {
				t.Fatalf("JetStream does not hold the declared %s: %+v", decl.path, info.Config)
			}
			res, err := r.reconcileConsumer(ctx, js, evc, evs)
			if err != nil || res.reason != eventsv1.ReasonInSync {
				t.Fatalf("second reconcile: %+v, %v; want InSync (no further update)", res, err)
			}
			summarizeStep(t, consumerStatus(evc), evc.Generation, res, err)
			checkOutcome(t, evc, consumerStatus(evc), wantReady, eventsv1.ReasonInSync)
			if field == "PauseUntil" && (evc.Status.State == nil || !evc.Status.State.Paused) {
				t.Errorf("status.state.paused is not true for a consumer paused until %v: %+v", rtPause, evc.Status.State)
			}
		})
	}
}

// TestConsumerOutOfBandEditRepaired: a new field changed by hand in
// JetStream is put back at the next reconcile (Updated), then in sync.
func TestConsumerOutOfBandEditRepaired(t *testing.T) {
	_, r, js, evs := ordersFixture(t)
	ctx := context.Background()
	pull := genConsumer("oob-pull", "orders", func(c *eventsv1.EventConsumer) {
		c.Spec.MaxRequestBatch, c.Spec.PriorityPolicy, c.Spec.PriorityGroups = 10, eventsv1.PriorityOverflow, []string{"jobs"}
	})
	push := genConsumer("oob-push", "orders", func(c *eventsv1.EventConsumer) {
		c.Spec.DeliverSubject, c.Spec.DeliverGroup, c.Spec.HeadersOnly, c.Spec.RateLimitBps = "deliver.oob", "workers", true, 1000
	})
	edits := map[*eventsv1.EventConsumer]func(*jetstream.ConsumerConfig){
		pull: func(c *jetstream.ConsumerConfig) {
			c.MaxRequestBatch, c.PriorityGroups = 99, []string{"other"}
		},
		push: func(c *jetstream.ConsumerConfig) { c.DeliverGroup, c.HeadersOnly, c.RateLimit = "", false, 5 },
	}
	for evc, edit := range edits {
		t.Run(evc.Name, func(t *testing.T) {
			if _, err := r.reconcileConsumer(ctx, js, evc, evs); err != nil {
				t.Fatal(err)
			}
			info, err := admin.GetConsumerInfo(ctx, js, "ORDERS", evc.Name)
			if err != nil {
				t.Fatal(err)
			}
			cfg := info.Config
			edit(&cfg)
			if cfg.DeliverSubject != "" {
				_, err = js.UpdatePushConsumer(ctx, "ORDERS", cfg)
			} else {
				_, err = js.UpdateConsumer(ctx, "ORDERS", cfg)
			}
			if err != nil {
				t.Fatalf("out-of-band edit: %v", err)
			}
			res, err := r.reconcileConsumer(ctx, js, evc, evs)
			if err != nil || res.reason != eventsv1.ReasonUpdated {
				t.Fatalf("reconcile after the edit: %+v, %v; want Updated", res, err)
			}
			desired, err := consumerConfig(evc)
			if err != nil {
				t.Fatal(err)
			}
			info, err = admin.GetConsumerInfo(ctx, js, "ORDERS", evc.Name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffConsumer(desired, info.Config); diff != nil {
				t.Fatalf("still differs in %v after the repair", diff)
			}
			if res, err := r.reconcileConsumer(ctx, js, evc, evs); err != nil || res.reason != eventsv1.ReasonInSync {
				t.Fatalf("after the repair: %+v, %v; want InSync", res, err)
			}
		})
	}
}

// TestConsumerImmutableChangeIsStalledNamingTheField: a change JetStream
// cannot make in place that got past admission (e.g. the consumer was
// changed by hand) is a terminal failure naming the field.
func TestConsumerImmutableChangeIsStalledNamingTheField(t *testing.T) {
	_, r, js, evs := ordersFixture(t)
	ctx := context.Background()
	evc := genConsumer("imm-push", "orders", func(c *eventsv1.EventConsumer) { c.Spec.DeliverSubject = "deliver.imm" })
	if _, err := r.reconcileConsumer(ctx, js, evc, evs); err != nil {
		t.Fatal(err)
	}
	for field, change := range map[string]func(*eventsv1.EventConsumerSpec){
		"deliverSubject": func(s *eventsv1.EventConsumerSpec) { s.DeliverSubject = "" },
		"replayPolicy":   func(s *eventsv1.EventConsumerSpec) { s.ReplayPolicy = eventsv1.ReplayOriginal },
		"idleHeartbeat":  func(s *eventsv1.EventConsumerSpec) { s.IdleHeartbeat = "1s" },
	} {
		t.Run(field, func(t *testing.T) {
			changed := evc.DeepCopy()
			change(&changed.Spec)
			changed.Generation++
			res, err := r.reconcileConsumer(ctx, js, changed, evs)
			if kindOf(t, err) != wantTerminal || !strings.Contains(err.Error(), field) {
				t.Fatalf("outcome %v (%v), want a terminal failure naming %s", kindOf(t, err), err, field)
			}
			summarizeStep(t, consumerStatus(changed), changed.Generation, res, err)
			checkConditionInvariants(t, changed.Status.Conditions)
		})
	}
}

// TestConsumerPauseEndsInSync: a pauseUntil already past, or one that
// ends, leaves the consumer in sync (no update loop: JetStream keeps an
// ended pause and drops a past one), and status.state.paused follows.
func TestConsumerPauseEndsInSync(t *testing.T) {
	_, r, js, evs := ordersFixture(t)
	ctx := context.Background()
	past := genConsumer("paused-past", "orders", func(c *eventsv1.EventConsumer) {
		c.Spec.PauseUntil = &metav1.Time{Time: time.Now().Add(-time.Hour)}
	})
	soon := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	ending := genConsumer("paused-ending", "orders", func(c *eventsv1.EventConsumer) {
		c.Spec.PauseUntil = &metav1.Time{Time: soon}
	})
	for _, evc := range []*eventsv1.EventConsumer{past, ending} {
		res, err := r.reconcileConsumer(ctx, js, evc, evs)
		if err != nil || res.reason != eventsv1.ReasonCreated {
			t.Fatalf("%s: create: %+v, %v", evc.Name, res, err)
		}
		// A running pause asks to be looked at again when it ends (plus
		// a second), so that status.state.paused follows it.
		if want := evc == ending; (res.requeueAfter > 0) != want ||
			(want && (res.requeueAfter < time.Second || res.requeueAfter > time.Until(soon)+2*time.Second)) {
			t.Errorf("%s: requeueAfter %v, want it only for the running pause, at its end plus 1s", evc.Name, res.requeueAfter)
		}
	}
	if past.Status.State.Paused || !ending.Status.State.Paused {
		t.Fatalf("paused: past %v, ending %v; want false, true", past.Status.State.Paused, ending.Status.State.Paused)
	}
	time.Sleep(time.Until(soon) + 200*time.Millisecond)
	for _, evc := range []*eventsv1.EventConsumer{past, ending} {
		for range 2 {
			if res, err := r.reconcileConsumer(ctx, js, evc, evs); err != nil || res.reason != eventsv1.ReasonInSync {
				t.Fatalf("%s: %+v, %v; want InSync (no update)", evc.Name, res, err)
			}
		}
		if evc.Status.State.Paused {
			t.Errorf("%s: status.state.paused after the pause ended", evc.Name)
		}
	}
}
