package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/natsconn"
)

// JetStreamProvider hands out the JetStream contexts of a connection (its
// own JetStream, or that of a JetStream domain), or an events.ErrConnection
// error when NATS is not reachable right now.
type JetStreamProvider interface {
	JetStream() (jetstream.JetStream, error)
	JetStreamIn(domain string) (jetstream.JetStream, error)
}

// OwnWrites is told before the operator writes a JetStream object, so that
// the advisory the write causes is not taken for drift.
type OwnWrites interface {
	ExpectOwnWrite(stream, consumer string)
}

// requestTimeout bounds each JetStream call of a reconcile.
const requestTimeout = 10 * time.Second

// reconciler holds what every reconciler of the operator shares.
type reconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	NATS     JetStreamProvider
	// ResyncInterval is how often an in-sync object is checked again (with
	// 10% jitter); drift is also caught at once through advisories.
	ResyncInterval time.Duration
	// MaxConcurrentReconciles is the number of workers.
	MaxConcurrentReconciles int
	// OwnWrites, when set, is told before each JetStream write.
	OwnWrites OwnWrites
	// Connections holds the per-resource connections (spec.connection);
	// nil when the operator does not allow them.
	Connections *natsconn.Pool
	// APIReader reads connection Secrets straight from the API server: the
	// operator gets only the Secrets resources name, and caches none.
	APIReader client.Reader
	// Adopt lists the namespaces whose resources may adopt JetStream objects
	// no resource manages (--adopt-namespaces).
	Adopt adoptPolicy
	// Domains lists the JetStream domains resources on the default
	// connection may name (--jetstream-domains).
	Domains domainPolicy
	// Clock stamps the conditions' lastTransitionTime; nil is the real
	// clock (tests inject k8s.io/utils/clock/testing).
	Clock clock.PassiveClock

	// statusWrites: the resourceVersion of the last status write to each
	// resource (see patchStatus); set by controllerFor.
	statusWrites *sync.Map
}

// jetStreamFor returns the JetStream context a resource in namespace uses:
// the operator's default connection, or the one its connection Secret
// describes, in JetStream domain domain (empty: on the default connection
// its own JetStream, on a Secret's the Secret's "domain" key). A domain
// on the default connection must be allowed by --jetstream-domains; a
// Secret's credentials bound what its connection reaches. user identifies
// the resource to the connection pool.
func (r *reconciler) jetStreamFor(ctx context.Context, namespace string, conn *eventsv1.ConnectionSpec, domain, user string) (jetstream.JetStream, error) {
	if conn == nil {
		if domain != "" && !r.Domains.allows(domain) {
			// Refused before anything is sent to that domain.
			return nil, &connectionNotAllowedError{domain: domain, domains: r.Domains}
		}
		return r.NATS.JetStreamIn(domain)
	}
	if r.Connections == nil {
		// Refused before the Secret is even read.
		return nil, &connectionNotAllowedError{secret: conn.SecretRef.Name}
	}
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: namespace, Name: conn.SecretRef.Name}
	if err := r.APIReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, newStepError(terminal, eventsv1.ReasonInvalidSpec, fmt.Sprintf(
				"spec.connection.secretRef: Secret %q not found in namespace %s", conn.SecretRef.Name, namespace))
		}
		return nil, err
	}
	c, err := r.Connections.Get(key.String(), secret.ResourceVersion, secret.Data, user)
	var refused *natsconn.URLNotAllowedError
	if errors.As(err, &refused) {
		return nil, &connectionNotAllowedError{secret: conn.SecretRef.Name, refused: refused}
	}
	if err != nil {
		return nil, err
	}
	if domain == "" {
		domain = c.Domain()
	}
	return c.JetStreamIn(domain)
}

// reconcileConnection is the step that resolves the NATS connection a
// resource uses (jetStreamFor); its failures are classified: a missing or
// bad Secret is InvalidSpec and a refused server ConnectionNotAllowed, both
// terminal; NATS unreachable is transient.
func (r *reconciler) reconcileConnection(ctx context.Context, namespace string, conn *eventsv1.ConnectionSpec, domain, user string) (jetstream.JetStream, error) {
	js, err := r.jetStreamFor(ctx, namespace, conn, domain, user)
	if err != nil {
		return nil, classify(err)
	}
	return js, nil
}

// connectionNotAllowedError is a connection the operator refuses to use:
// per-resource connections are off (secret set, refused nil), the Secret's
// url is not allowed by --resource-connection-urls (refused set), or a
// JetStream domain on the operator's own connection is not allowed by
// --jetstream-domains (domain set). Reported as ConnectionNotAllowed; only
// the administrator or the resource can change it.
type connectionNotAllowedError struct {
	secret  string
	refused *natsconn.URLNotAllowedError
	domain  string
	domains domainPolicy
	// field names what named the domain: spec.domain (empty) or a mirror's
	// or source's domain or external.apiPrefix.
	field string
}

func (e *connectionNotAllowedError) Error() string {
	switch {
	case e.domain != "":
		field := e.field
		if field == "" {
			field = "spec.domain"
		}
		return fmt.Sprintf("%s %q is not a JetStream domain this operator may use on its own NATS connection "+
			"(--jetstream-domains: %s), so nothing was sent; remove %s, ask the administrator to allow the domain, "+
			"or name a server whose credentials reach it in spec.connection", field, e.domain, e.domains, field)
	case e.refused == nil:
		return fmt.Sprintf("per-resource connections are disabled in this operator (--allow-resource-connections=false), "+
			"so spec.connection (Secret %q) was not used and nothing was dialled; remove spec.connection to use the operator's NATS, "+
			"or ask the administrator to enable them", e.secret)
	}
	return fmt.Sprintf("the url in Secret %q is refused and nothing was dialled: %v (--resource-connection-urls); "+
		"point the Secret at an allowed server or ask the administrator to add a pattern", e.secret, e.refused)
}

func (e *connectionNotAllowedError) Unwrap() error {
	if e.refused == nil {
		return nil
	}
	return e.refused
}

// domainPolicy lists the JetStream domains resources on the operator's own
// connection may name (--jetstream-domains): "*" allows any, none allows
// none (resources then use the connection's own JetStream only).
type domainPolicy []string

func (p domainPolicy) allows(domain string) bool {
	for _, d := range p {
		if d == "*" || d == domain {
			return true
		}
	}
	return false
}

// String lists the allowed domains for messages.
func (p domainPolicy) String() string {
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ",")
}

// checkSourceDomains refuses, on the operator's own connection (conn nil),
// a mirror or source in a JetStream domain --jetstream-domains does not
// allow: JetStream would reach into that domain on the operator's account
// to copy its messages. A domain is named by `domain` or by an
// external.apiPrefix of the form $JS.<domain>.API (any other prefix is an
// account import, which only the account's configuration can grant).
// field is the JSON path of the first source ("spec.mirror",
// "spec.sources").
func (r *reconciler) checkSourceDomains(conn *eventsv1.ConnectionSpec, field string, sources ...eventsv1.StreamSource) error {
	if conn != nil {
		return nil
	}
	for i, s := range sources {
		path := field
		if field != "spec.mirror" {
			path = fmt.Sprintf("%s[%d]", field, i)
		}
		domain, what := s.Domain, path+".domain"
		if s.External != nil {
			if d, ok := strings.CutPrefix(s.External.APIPrefix, "$JS."); ok {
				if d, ok = strings.CutSuffix(d, ".API"); ok && !strings.Contains(d, ".") {
					domain, what = d, path+".external.apiPrefix"
				}
			}
		}
		if domain != "" && !r.Domains.allows(domain) {
			return &connectionNotAllowedError{domain: domain, domains: r.Domains, field: what}
		}
	}
	return nil
}

// checkStreamSources runs checkSourceDomains on a mirror and sources.
func (r *reconciler) checkStreamSources(conn *eventsv1.ConnectionSpec, mirror *eventsv1.StreamSource, sources []eventsv1.StreamSource) error {
	if mirror != nil {
		if err := r.checkSourceDomains(conn, "spec.mirror", *mirror); err != nil {
			return err
		}
	}
	return r.checkSourceDomains(conn, "spec.sources", sources...)
}

// connectionUnresolvable reports an error of jetStreamFor that says where a
// resource lives can never be known as things stand (a bad or missing
// Secret, a refused connection): deletion does not wait for such a server.
func connectionUnresolvable(err error) bool {
	return err != nil && classify(err).kind == terminal
}

// releaseConnection tells the pool that user no longer needs a connection.
func (r *reconciler) releaseConnection(user string) {
	if r.Connections != nil {
		r.Connections.Release(user)
	}
}

func (r *reconciler) controllerOptions() controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1),
		// Transient failures back off from 250ms to 2m; the overall bucket
		// is raised from controller-runtime's 10 qps for operators that
		// manage hundreds of objects.
		RateLimiter: workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[ctrl.Request](250*time.Millisecond, 2*time.Minute),
			&workqueue.TypedBucketRateLimiter[ctrl.Request]{Limiter: rate.NewLimiter(rate.Limit(100), 1000)},
		),
	}
}

func (r *reconciler) resync() time.Duration {
	d := r.ResyncInterval
	if d <= 0 {
		d = time.Minute
	}
	return wait.Jitter(d, 0.1)
}

func (r *reconciler) expectOwnWrite(stream, consumer string) {
	if r.OwnWrites != nil {
		r.OwnWrites.ExpectOwnWrite(stream, consumer)
	}
}

func (r *reconciler) event(obj client.Object, eventType, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, eventType, reason, action, "%s", note)
	}
}

// ensureFinalizer adds the finalizer with one optimistic-locked patch. Where
// the finalizer MutatingAdmissionPolicy is installed (config/admission, the
// chart) the API server has added it at create, and this writes nothing.
func (r *reconciler) ensureFinalizer(ctx context.Context, obj client.Object) error {
	if controllerutil.ContainsFinalizer(obj, eventsv1.Finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(obj, eventsv1.Finalizer)
	return r.Patch(ctx, obj, patch)
}

// removeFinalizer lets the API server delete the object.
func (r *reconciler) removeFinalizer(ctx context.Context, obj client.Object) error {
	patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, eventsv1.Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, obj, patch))
}

// call runs one JetStream request with a timeout and records its metrics.
func call[T any](ctx context.Context, op string, fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	v, err := fn(ctx)
	observe(op, start, err)
	return v, err
}

// userKey names a resource to the connection pool.
func userKey(kind string, obj client.Object) string {
	return kind + ":" + obj.GetNamespace() + "/" + obj.GetName()
}

// controllerFor starts the controller of a kind: reconciles on a change of
// the spec, labels or annotations and on deletion (not on status writes),
// with the shared options.
func (r *reconciler) controllerFor(mgr ctrl.Manager, obj client.Object, name string) *builder.Builder {
	if r.statusWrites == nil {
		r.statusWrites = &sync.Map{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(obj, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{},
			predicate.LabelChangedPredicate{}, deletionPredicate{}))).
		Named(name).
		WithOptions(r.controllerOptions())
}

// watchTriggers adds the trigger channel (advisories, reconnects), when
// there is one, mapped to requests by fn.
func watchTriggers(b *builder.Builder, triggers <-chan event.GenericEvent, fn handler.TypedMapFunc[client.Object, ctrl.Request]) *builder.Builder {
	if triggers == nil {
		return b
	}
	return b.WatchesRawSource(source.Channel(triggers, handler.EnqueueRequestsFromMapFunc(fn)))
}

// listByIndex lists into list the objects whose index is value, or every
// object when value is All; it logs a failure and returns false.
func (r *reconciler) listByIndex(ctx context.Context, list client.ObjectList, index, value string) bool {
	var opts []client.ListOption
	if value != All {
		opts = append(opts, client.MatchingFields{index: value})
	}
	if err := r.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing resources for a trigger", "index", index, "value", value)
		return false
	}
	return true
}

// deletionPredicate lets through updates that mark the resource deleted,
// whether or not the API server bumped its generation.
type deletionPredicate struct{ predicate.Funcs }

func (deletionPredicate) Update(e event.UpdateEvent) bool {
	return e.ObjectNew != nil && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}
