package controller

import (
	"context"
	"strings"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
)

// deadLetterLedger adapts the forwarder's durable ledger (a JetStream
// KeyValue bucket, watched into memory) to the EventConsumer reconciler.
type deadLetterLedger struct{ l *dlq.Ledger }

// DeadLettered returns the ledger's count for the resource with uid, or
// false when the ledger holds none for it (nothing dead-lettered since the
// ledger exists, its watch has not replayed it yet, or the stored count is
// an older resource's of the same name).
func (d deadLetterLedger) DeadLettered(key types.NamespacedName, uid types.UID) (int64, bool) {
	c, ok := d.l.Get(ledgerKey(key))
	if !ok || c.UID != string(uid) {
		return 0, false
	}
	return c.DeadLettered, true
}

// Forget deletes the resource's count, if the ledger holds one, so that a
// new resource of the same name starts at 0 (one left behind would not be
// continued anyway: it carries the old UID). A consumer that never
// dead-lettered costs no JetStream request.
func (d deadLetterLedger) Forget(ctx context.Context, key types.NamespacedName) error {
	if _, ok := d.l.Get(ledgerKey(key)); !ok {
		return nil
	}
	return d.l.Delete(ctx, ledgerKey(key))
}

// ledgerKey is a resource's key in the ledger and its dlq.Target key:
// "namespace/name" (a valid KeyValue key; unambiguous, since a namespace
// holds no "/").
func ledgerKey(key types.NamespacedName) string { return key.Namespace + "/" + key.Name }

// newDeadLetterLedger returns the ledger on the default connection; every
// change of a count triggers the consumer's reconcile.
func newDeadLetterLedger(nc *nats.Conn, triggers *Triggers, log logr.Logger) *dlq.Ledger {
	return dlq.NewLedger(nc, dlq.WithLedgerLogger(log), dlq.WithOnChange(func(key string, _ dlq.Count) {
		triggers.Reconcile(splitKey(key))
	}))
}

// newDeadLetterForwarder wires the dead-letter forwarder to the EventConsumers:
// it resolves a JetStream consumer to the EventConsumer that declares it (and
// its deadLetter subject) and counts each dead letter in ledger.
func newDeadLetterForwarder(nc *nats.Conn, c client.Reader, ledger *dlq.Ledger, triggers *Triggers, log logr.Logger) *dlq.Forwarder {
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
			t := dlq.Target{
				Key:     ledgerKey(client.ObjectKeyFromObject(evc)),
				Subject: evc.DeadLetterSubject,
				UID:     string(evc.UID),
			}
			// A count kept in status by an operator from before the
			// ledger is where the ledger starts.
			if evc.Status.State != nil {
				t.Base = evc.Status.State.DeadLettered
			}
			return t, true
		}
		return dlq.Target{}, false
	}
	return dlq.New(nc, resolve,
		dlq.WithLogger(log),
		dlq.WithLedger(ledger),
		dlq.WithOnNotStored(func(key, subject string, err error) {
			log.Info("dead letter not stored: no stream captures its subject", "consumer", key, "subject", subject, "error", err.Error())
			triggers.Reconcile(splitKey(key))
		}),
	)
}

// splitKey reverses ledgerKey.
func splitKey(key string) types.NamespacedName {
	ns, name, _ := strings.Cut(key, "/")
	return types.NamespacedName{Namespace: ns, Name: name}
}
