package controller

import (
	"context"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
)

// deadLetterCounts accumulates, per EventConsumer, the dead letters the
// forwarder reports until the consumer's reconcile moves them into status.
type deadLetterCounts struct {
	mu sync.Mutex
	m  map[types.NamespacedName]int64
}

func newDeadLetterCounts() *deadLetterCounts {
	return &deadLetterCounts{m: map[types.NamespacedName]int64{}}
}

func (c *deadLetterCounts) Add(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key]++
}

func (c *deadLetterCounts) Take(key types.NamespacedName) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.m[key]
	delete(c.m, key)
	return n
}

func (c *deadLetterCounts) Restore(key types.NamespacedName, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] += n
}

// newDeadLetterForwarder wires the dead-letter forwarder to the EventConsumers:
// it resolves a JetStream consumer to the EventConsumer that declares it (and
// its deadLetter subject), and reports each dead letter to counts and to the
// consumer's reconcile.
func newDeadLetterForwarder(nc *nats.Conn, c client.Reader, counts *deadLetterCounts, triggers *Triggers, log logr.Logger) *dlq.Forwarder {
	resolve := func(stream, consumer string) (dlq.Target, bool) {
		list := &eventsv1.EventConsumerList{}
		if err := c.List(context.Background(), list, client.MatchingFields{consumerNameIndex: consumer}); err != nil {
			log.Error(err, "listing EventConsumers to resolve a dead letter", "stream", stream, "consumer", consumer)
			return dlq.Target{}, false
		}
		for i := range list.Items {
			evc := &list.Items[i]
			if evc.Status.StreamName != stream || evc.Spec.DeadLetter == nil {
				continue
			}
			return dlq.Target{
				Key:     evc.Namespace + "/" + evc.Name,
				Subject: evc.DeadLetterSubject,
			}, true
		}
		return dlq.Target{}, false
	}
	counted := func(key string) {
		nn := splitKey(key)
		counts.Add(nn)
		triggers.Reconcile(nn)
	}
	return dlq.New(nc, resolve,
		dlq.WithLogger(log),
		dlq.WithOnForwarded(counted),
		dlq.WithOnAlreadyDeadLettered(counted),
		dlq.WithOnNotStored(func(key, subject string, err error) {
			log.Info("dead letter not stored: no stream captures its subject", "consumer", key, "subject", subject, "error", err.Error())
			triggers.Reconcile(splitKey(key))
		}),
	)
}

// splitKey reverses the "namespace/name" key of a dlq.Target.
func splitKey(key string) types.NamespacedName {
	ns, name, _ := strings.Cut(key, "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}
