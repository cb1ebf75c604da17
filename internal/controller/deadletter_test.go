package controller_test

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
	"github.com/giia/eventstream-operator/pkg/events"
)

// dlqFixture is a stream, a consumer with dead-lettering that gives up after
// two deliveries, and a stream that stores its dead letters.
type dlqFixture struct {
	stream, dlq *eventsv1.EventStream
	consumer    *eventsv1.EventConsumer
}

func newDLQFixture() dlqFixture {
	GinkgoHelper()
	ctx := context.Background()
	evs := newStream(uniqueName("orders"))
	dlq := newStream(uniqueName("dlqstore"), func(e *eventsv1.EventStream) { e.Spec.Subjects = []string{"dlq." + evs.Name + ".>"} })
	evc := newConsumer(uniqueName("worker"), evs.Name, func(c *eventsv1.EventConsumer) {
		c.Spec.MaxDeliver = 2
		c.Spec.AckWait = "1s"
		c.Spec.DeadLetter = &eventsv1.DeadLetter{}
	})
	Expect(k8s.Create(ctx, evs)).To(Succeed())
	Expect(k8s.Create(ctx, dlq)).To(Succeed())
	Expect(k8s.Create(ctx, evc)).To(Succeed())
	expectReady(evs)
	expectReady(dlq)
	Eventually(consumerReady(evc)).Should(HavePrefix("True/"))
	return dlqFixture{stream: evs, dlq: dlq, consumer: evc}
}

func (f dlqFixture) cleanup() {
	deleteConsumerAndWait(f.consumer)
	deleteAndWait(f.stream)
	deleteAndWait(f.dlq)
}

// publishEvent publishes a CloudEvent with the library and returns it.
func (f dlqFixture) publishEvent() (*events.Event, uint64) {
	GinkgoHelper()
	e, err := events.NewEvent("order.created", "orders-service", "org-1", time.Now().UTC(), map[string]any{"id": 42})
	Expect(err).NotTo(HaveOccurred())
	msg, err := events.Encode(e, events.ModeBinary)
	Expect(err).NotTo(HaveOccurred())
	msg.Subject = f.stream.Name + ".created"
	ack, err := js.PublishMsg(context.Background(), msg)
	Expect(err).NotTo(HaveOccurred())
	return e, ack.Sequence
}

// neverAck fetches from the consumer and never acknowledges, until done is
// closed (JetStream emits MAX_DELIVERIES when a pull is waiting after the
// last delivery's ack wait).
func (f dlqFixture) neverAck(done <-chan struct{}) {
	defer GinkgoRecover()
	cons, err := js.Consumer(context.Background(), f.stream.JetStreamName(), f.consumer.Name)
	Expect(err).NotTo(HaveOccurred())
	for {
		select {
		case <-done:
			return
		default:
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			continue
		}
		for range batch.Messages() {
		}
	}
}

func (f dlqFixture) deadLetters() []*jetstream.RawStreamMsg {
	ctx := context.Background()
	info, err := streamInfo(f.dlq.JetStreamName())
	if err != nil || info.State.Msgs == 0 {
		return nil
	}
	s, err := js.Stream(ctx, f.dlq.JetStreamName())
	if err != nil {
		return nil
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		if m, err := s.GetMsg(ctx, seq); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// deadLettered reads status.state.deadLettered of the fixture's consumer.
func (f dlqFixture) deadLettered() int64 {
	out := &eventsv1.EventConsumer{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(f.consumer), out); err != nil || out.Status.State == nil {
		return -1
	}
	return out.Status.State.DeadLettered
}

// ledger reads the consumer's count from the operator's KeyValue ledger
// (nil: no key).
func (f dlqFixture) ledger() *dlq.Count {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, dlq.DefaultLedgerBucket)
	if err != nil {
		return nil
	}
	e, err := kv.Get(ctx, f.consumer.Namespace+"/"+f.consumer.Name)
	if err != nil {
		return nil
	}
	var c dlq.Count
	Expect(jsonUnmarshal(e.Value(), &c)).To(Succeed())
	return &c
}

// setDeadLettered writes status.state.deadLettered by hand (what an older
// operator left, or a status write that never happened).
func (f dlqFixture) setDeadLettered(n int64) {
	GinkgoHelper()
	x := getConsumer(f.consumer)
	patch := client.MergeFrom(x.DeepCopy())
	if x.Status.State == nil {
		x.Status.State = &eventsv1.EventConsumerState{}
	}
	x.Status.State.DeadLettered = n
	Expect(k8s.Status().Patch(context.Background(), x, patch)).To(Succeed())
}

// deadLetterOne publishes an event and fails it until it is dead-lettered
// (the DLQ stream holds want messages).
func (f dlqFixture) deadLetterOne(want int) {
	GinkgoHelper()
	f.publishEvent()
	done := make(chan struct{})
	go f.neverAck(done)
	defer close(done)
	Eventually(f.deadLetters, 20*time.Second).Should(HaveLen(want))
}

func expectDeadLetter(f dlqFixture, e *events.Event, seq uint64) {
	GinkgoHelper()
	Eventually(f.deadLetters, 20*time.Second).Should(HaveLen(1))
	Consistently(f.deadLetters, 2*time.Second).Should(HaveLen(1), "stored exactly once")
	dl := f.deadLetters()[0]
	Expect(dl.Subject).To(Equal("dlq." + f.stream.Name + ".created"))
	h := dl.Header
	Expect(h.Get(nats.MsgIdHdr)).To(Equal(events.DeadLetterMsgID(f.stream.JetStreamName(), seq)))
	Expect(h.Get(events.HeaderDLQStream)).To(Equal(f.stream.JetStreamName()))
	Expect(h.Get(events.HeaderDLQConsumer)).To(Equal(f.consumer.Name))
	Expect(h.Get(events.HeaderDLQSubject)).To(Equal(f.stream.Name + ".created"))
	Expect(h.Get(events.HeaderDLQSequence)).To(Equal(strconv.FormatUint(seq, 10)))
	Expect(h.Get(events.HeaderDLQDeliveries)).To(Equal("2"))
	Expect(h.Get(events.HeaderDLQReason)).NotTo(BeEmpty())
	Expect(h.Get(events.HeaderDLQTime)).NotTo(BeEmpty())
	// The original event travels unchanged: body and ce- headers.
	got, err := events.Decode(&nats.Msg{Subject: dl.Subject, Header: dl.Header, Data: dl.Data})
	Expect(err).NotTo(HaveOccurred())
	Expect(got.ID).To(Equal(e.ID))
	Expect(got.Type).To(Equal(e.Type))
	Expect(got.OrganizationID).To(Equal("org-1"))
	data, err := events.DataAs[struct {
		ID int `json:"id"`
	}](got)
	Expect(err).NotTo(HaveOccurred())
	Expect(data.ID).To(Equal(42))
}

var _ = Describe("Operator-side dead-letter forwarding", Ordered, func() {
	It("dead-letters a message a client fetched and never acked, once, with every header, and counts it", func() {
		stop := startManager(time.Minute)
		defer stop()
		f := newDLQFixture()
		e, seq := f.publishEvent()
		done := make(chan struct{})
		go f.neverAck(done)
		defer close(done)

		expectDeadLetter(f, e, seq)
		Eventually(func() int64 {
			if st := getConsumer(f.consumer).Status.State; st != nil {
				return st.DeadLettered
			}
			return 0
		}, 10*time.Second).Should(Equal(int64(1)))
		f.cleanup()
	})

	It("dead-letters what failed while the operator was down once it is back", func() {
		stop := startManager(time.Minute)
		f := newDLQFixture()
		stop() // the operator is down from here

		e, seq := f.publishEvent()
		done := make(chan struct{})
		go f.neverAck(done)
		// Enough for two deliveries, two ack waits and the advisory.
		time.Sleep(5 * time.Second)
		close(done)
		Expect(f.deadLetters()).To(BeEmpty(), "nobody forwarded while the operator was down")

		stop = startManager(time.Minute)
		defer stop()
		expectDeadLetter(f, e, seq)
		Eventually(f.deadLettered, 10*time.Second).Should(Equal(int64(1)))
		f.cleanup()
	})

	It("does not dead-letter twice what the library dead-lettered", func() {
		stop := startManager(time.Minute)
		defer stop()
		f := newDLQFixture()
		e, seq := f.publishEvent()

		handled := make(chan struct{}, 1)
		sub, err := events.SubscribeDurable(context.Background(), js, f.stream.JetStreamName(), f.consumer.Name,
			func(context.Context, *events.Event) error {
				select {
				case handled <- struct{}{}:
				default:
				}
				return events.Permanent(errPoison)
			}, events.SubscriberConfig{})
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = sub.Stop(context.Background()) }()
		Eventually(handled).Should(Receive())

		Eventually(f.deadLetters, 10*time.Second).Should(HaveLen(1))
		Consistently(f.deadLetters, 3*time.Second).Should(HaveLen(1), "the operator did not add a second dead letter")
		Expect(f.deadLetters()[0].Header.Get(nats.MsgIdHdr)).To(Equal(events.DeadLetterMsgID(f.stream.JetStreamName(), seq)))
		_ = e
		Eventually(func() int64 {
			if st := getConsumer(f.consumer).Status.State; st != nil {
				return st.DeadLettered
			}
			return 0
		}, 10*time.Second).Should(Equal(int64(1)), "counted once, though the library sent it")
		f.cleanup()
	})
})

var _ = Describe("Durable dead-letter counts", Ordered, func() {
	It("keeps counts in the ledger: a new manager puts a lost status write right, and counts what failed while it was down", func() {
		stop := startManager(time.Minute)
		defer func() { stop() }() // stop may be called twice
		f := newDLQFixture()
		f.deadLetterOne(1)
		Eventually(f.deadLettered, 10*time.Second).Should(Equal(int64(1)))
		Expect(f.ledger()).To(Equal(&dlq.Count{DeadLettered: 1, UID: string(getConsumer(f.consumer).UID)}))
		stop()

		// The manager is gone; its last status write is lost (the status
		// says 0), and another message is given up on meanwhile.
		f.setDeadLettered(0)
		f.publishEvent()
		done := make(chan struct{})
		go f.neverAck(done)
		time.Sleep(5 * time.Second) // two deliveries, two ack waits, the advisory
		close(done)

		stop = startManager(time.Minute)
		Eventually(f.deadLetters, 20*time.Second).Should(HaveLen(2))
		Eventually(f.deadLettered, 10*time.Second).Should(Equal(int64(2)), "1 from the ledger + 1 forwarded after the restart")
		Consistently(f.deadLettered, 2*time.Second).Should(Equal(int64(2)))
		f.cleanup()
	})

	It("continues a count an older operator kept in status, and starts a recreated consumer at 0", func() {
		stop := startManager(time.Minute)
		defer func() { stop() }() // stop may be called twice
		f := newDLQFixture()
		stop()
		// An operator from before the ledger counted 5 in status only.
		f.setDeadLettered(5)
		stop = startManager(time.Minute)
		Consistently(f.deadLettered, 3*time.Second).Should(Equal(int64(5)), "no ledger key: the status is left as it is")
		Expect(f.ledger()).To(BeNil())

		f.deadLetterOne(1)
		Eventually(f.deadLettered, 10*time.Second).Should(Equal(int64(6)))
		Expect(f.ledger()).To(HaveField("DeadLettered", int64(6)))

		// Deleting the EventConsumer deletes its count; a new one of the
		// same name starts from nothing. Its JetStream consumer is new too
		// and gets the stored message again, which it gives up on.
		deleteConsumerAndWait(f.consumer)
		Eventually(f.ledger).Should(BeNil())
		f.consumer = newConsumer(f.consumer.Name, f.stream.Name, func(c *eventsv1.EventConsumer) {
			c.Spec.MaxDeliver = 2
			c.Spec.AckWait = "1s"
			c.Spec.DeadLetter = &eventsv1.DeadLetter{}
		})
		Expect(k8s.Create(context.Background(), f.consumer)).To(Succeed())
		Eventually(consumerReady(f.consumer)).Should(HavePrefix("True/"))
		Expect(f.deadLettered()).To(BeNumerically("<=", 0))
		done := make(chan struct{})
		go f.neverAck(done)
		Eventually(f.deadLettered, 20*time.Second).Should(Equal(int64(1)))
		close(done)
		Consistently(f.deadLettered, 2*time.Second).Should(Equal(int64(1)))
		Expect(f.ledger()).To(Equal(&dlq.Count{DeadLettered: 1, UID: string(getConsumer(f.consumer).UID)}))
		f.cleanup()
	})
})

var errPoison = errorString("poison message")

type errorString string

func (e errorString) Error() string { return string(e) }
