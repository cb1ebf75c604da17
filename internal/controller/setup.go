package controller

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// Options configure the controllers.
type Options struct {
	ResyncInterval          time.Duration
	MaxConcurrentReconciles int
	// AllowResourceConnections lets EventStreams name their own NATS server
	// through spec.connection.secretRef.
	AllowResourceConnections bool
	// AdoptNamespaces lists the namespaces whose resources may adopt, with
	// the events.giia.io/adopt annotation, JetStream objects that no resource
	// manages; "*" allows every namespace, none allows none.
	AdoptNamespaces []string
	// ResourceConnectionURLs restricts the servers those connections may
	// name (natsconn.HostPatterns: host, host:port, *.domain[:port]); empty
	// allows any.
	ResourceConnectionURLs []string
	// SchemaBucket is the schema registry's KeyValue bucket
	// (--schema-bucket); empty is schemas.DefaultBucket.
	SchemaBucket string
}

// Setup adds every controller of the operator, the JetStream advisory watcher
// that feeds them and the dead-letter forwarder to mgr. The manager binary and the test suites
// both call it, so tests run exactly what ships.
func Setup(mgr ctrl.Manager, nc *natsconn.Conn, o Options) error {
	allowed, err := natsconn.ParseHostPatterns(o.ResourceConnectionURLs)
	if err != nil {
		return fmt.Errorf("--resource-connection-urls: %w", err)
	}
	triggers := NewTriggers(nc.NATS(), mgr.GetLogger().WithName("advisories"))
	nc.OnReconnect(triggers.ResyncAll)
	if err := mgr.Add(triggers); err != nil {
		return err
	}
	base := reconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("eventstream-operator"),
		NATS:                    nc,
		ResyncInterval:          o.ResyncInterval,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		OwnWrites:               triggers,
		Adopt:                   adoptPolicy(o.AdoptNamespaces),
	}
	if o.AllowResourceConnections {
		pool := natsconn.NewPool(mgr.GetLogger().WithName("nats-pool"), triggers.Attach, allowed)
		base.Connections = pool
		if err := mgr.Add(closeOnStop{pool.Close}); err != nil {
			return err
		}
	}
	triggers.SetDeletionAudit(missingStreams(mgr.GetClient(), nc, base.Connections), 0)
	if err := (&EventStreamReconciler{reconciler: base, Triggers: triggers.Streams()}).SetupWithManager(mgr); err != nil {
		return err
	}
	// Dead-letter counts live in a JetStream KeyValue ledger on the default
	// connection; its watch (leader only, like the reconciles that write
	// status) keeps them in memory and triggers the consumer's reconcile.
	dlLog := mgr.GetLogger().WithName("dead-letters")
	ledger := newDeadLetterLedger(nc.NATS(), triggers, dlLog)
	if err := mgr.Add(ledger); err != nil {
		return err
	}
	if err := (&EventConsumerReconciler{
		reconciler: base, Triggers: triggers.Consumers(), DeadLetters: deadLetterLedger{ledger}, StreamsEpoch: triggers.StreamsEpoch,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&EventKeyValueReconciler{reconciler: base, Triggers: triggers.KeyValues()}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&EventObjectStoreReconciler{reconciler: base, Triggers: triggers.ObjectStores()}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := setupSchemas(mgr, nc, base, o.SchemaBucket); err != nil {
		return err
	}
	if err := (&EventReplayReconciler{reconciler: base}).SetupWithManager(mgr); err != nil {
		return err
	}
	// After the controllers: the forwarder's resolver uses their indexes.
	return mgr.Add(newDeadLetterForwarder(nc.NATS(), mgr.GetClient(), ledger, triggers, dlLog))
}

// setupSchemas adds the EventSchema controller and the watch of its
// registry bucket on the default connection.
func setupSchemas(mgr ctrl.Manager, nc *natsconn.Conn, base reconciler, bucket string) error {
	if bucket == "" {
		bucket = schemas.DefaultBucket
	}
	if !validBucketName.MatchString(bucket) {
		return fmt.Errorf("--schema-bucket %q: a KeyValue bucket name holds only letters, digits, '_' and '-'", bucket)
	}
	watch := newSchemaWatch(nc.NATS(), bucket, mgr.GetLogger().WithName("schema-registry"))
	if err := mgr.Add(watch); err != nil {
		return err
	}
	return (&EventSchemaReconciler{reconciler: base, Bucket: bucket, Watch: watch}).SetupWithManager(mgr)
}

// closeOnStop runs fn when the manager stops.
type closeOnStop struct{ fn func() }

func (c closeOnStop) Start(ctx context.Context) error {
	<-ctx.Done()
	c.fn()
	return nil
}

// missingStreams is the deletion audit: the streams of EventStreams that
// were created (status.streamName), and of buckets (EventKeyValues,
// EventObjectStores: status.bucketName), that are no longer in JetStream,
// on the default connection and on every per-resource connection the pool
// holds (a resource whose connection is not open yet has nothing to audit).
func missingStreams(c client.Reader, nc *natsconn.Conn, pool *natsconn.Pool) StreamAudit {
	return func(ctx context.Context) ([]string, error) {
		want := map[string][]string{} // by connection: "" or the Secret's "namespace/name"
		add := func(obj client.Object, conn *eventsv1.ConnectionSpec, stream string) {
			if !obj.GetDeletionTimestamp().IsZero() {
				return
			}
			key := ""
			if conn != nil {
				key = obj.GetNamespace() + "/" + conn.SecretRef.Name
			}
			want[key] = append(want[key], stream)
		}
		list := &eventsv1.EventStreamList{}
		if err := c.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range list.Items {
			if evs := &list.Items[i]; evs.Status.StreamName != "" {
				add(evs, evs.Spec.Connection, evs.Status.StreamName)
			}
		}
		kvs := &eventsv1.EventKeyValueList{}
		if err := c.List(ctx, kvs, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range kvs.Items {
			if kv := &kvs.Items[i]; kv.Status.BucketName != "" {
				add(kv, kv.Spec.Connection, admin.KeyValueStreamPrefix+kv.Status.BucketName)
			}
		}
		objs := &eventsv1.EventObjectStoreList{}
		if err := c.List(ctx, objs, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		for i := range objs.Items {
			if o := &objs.Items[i]; o.Status.BucketName != "" {
				add(o, o.Spec.Connection, admin.ObjectStoreStreamPrefix+o.Status.BucketName)
			}
		}
		var missing []string
		for key, names := range want {
			conn := nc
			if key != "" {
				if pool == nil {
					continue
				}
				if conn = pool.Lookup(key); conn == nil {
					continue
				}
			}
			have, err := streamNames(ctx, conn)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				if !have[n] {
					missing = append(missing, n)
				}
			}
		}
		return missing, nil
	}
}

func streamNames(ctx context.Context, conn *natsconn.Conn) (map[string]bool, error) {
	js, err := conn.JetStream()
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	names := js.StreamNames(ctx)
	for n := range names.Name() {
		have[n] = true
	}
	return have, names.Err()
}
