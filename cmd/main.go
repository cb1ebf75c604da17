// Command manager runs the eventstream-operator: it reconciles EventStream
// resources into NATS JetStream streams.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/controller"
	"github.com/giia/eventstream-operator/internal/health"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(eventsv1.AddToScheme(scheme))
}

type options struct {
	nats                    natsconn.Options
	resyncInterval          time.Duration
	maxConcurrentReconciles int
	watchNamespaces         string
	schemaBucket            string
	leaderElect             bool
	leaderElectionNamespace string
	leaseDuration           time.Duration
	renewDeadline           time.Duration
	retryPeriod             time.Duration
	metricsAddr             string
	probeAddr               string
	pprofAddr               string
	secureMetrics           bool
	metricsCertPath         string
	metricsCertName         string
	metricsCertKey          string
	allowResourceConns      bool
	adoptNamespaces         string
	resourceConnURLs        string
	jetStreamDomains        string
}

func main() {
	var o options
	bindFlags(flag.CommandLine, &o)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(o); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// bindFlags defines the manager's flags on fs, writing into o.
func bindFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.nats.URL, "nats-url", envOr("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL(s), comma-separated. Env: NATS_URL.")
	fs.StringVar(&o.nats.CredsFile, "nats-creds", "", "Path to a NATS credentials file (mounted from a Secret).")
	fs.StringVar(&o.nats.TLSCA, "nats-tls-ca", "", "Path to the CA certificate that signs the NATS server's certificate.")
	fs.StringVar(&o.nats.TLSCert, "nats-tls-cert", "", "Path to the client certificate for NATS (mutual TLS).")
	fs.StringVar(&o.nats.TLSKey, "nats-tls-key", "", "Path to the client key for NATS (mutual TLS).")
	fs.DurationVar(&o.resyncInterval, "resync-interval", time.Minute, "How often each resource is checked against JetStream (jittered 10%); advisories repair drift sooner.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 8, "Reconcile workers per kind. The default was chosen by measurement (the operator benchmark with 4, 8 and 16 workers): see docs/performance.md, \"Worker count\".")
	fs.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Enable leader election, for running more than one replica.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (default: the pod's namespace).")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a follower waits, after the leader's last renewal, before it takes the lease over.")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps retrying to renew the lease before it gives up leadership (and the manager exits).")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second, "How often leader election clients try to acquire or renew the lease.")
	fs.BoolVar(&o.allowResourceConns, "allow-resource-connections", false, "Let EventStreams name their own NATS server and credentials through spec.connection.secretRef (the operator then reads those Secrets, and only those). Off: such resources are refused with reason ConnectionNotAllowed.")
	fs.StringVar(&o.resourceConnURLs, "resource-connection-urls", "", "With --allow-resource-connections: comma-separated host patterns the Secrets' URLs must match, each host, host:port, *.domain or *.domain:port (\"*.\" matches one or more labels; no port means 4222; no DNS lookups). Empty allows any host.")
	fs.StringVar(&o.schemaBucket, "schema-bucket", schemas.DefaultBucket, "JetStream KeyValue bucket of the event schema registry: EventSchemas are stored there (created with the operator's owner marker if missing, never deleted) and services validate against it.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint (HTTPS with --metrics-secure, the default); \"0\" disables it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, and only to clients that present a bearer token the API server authenticates (TokenReview) and authorizes for GET on the /metrics URL (SubjectAccessReview). false: plain HTTP, unauthenticated: bind it to loopback or restrict it with a NetworkPolicy.")
	fs.StringVar(&o.metricsCertPath, "metrics-cert-path", "", "Directory holding the metrics server's certificate and key (e.g. a mounted cert-manager Secret), reloaded when they change; empty: a self-signed certificate generated at start.")
	fs.StringVar(&o.metricsCertName, "metrics-cert-name", "tls.crt", "Certificate file name in --metrics-cert-path.")
	fs.StringVar(&o.metricsCertKey, "metrics-cert-key", "tls.key", "Key file name in --metrics-cert-path.")
	fs.StringVar(&o.adoptNamespaces, "adopt-namespaces", ownNamespace(), "Comma-separated namespaces whose EventStreams and EventConsumers may adopt, with the annotation events.giia.io/adopt: \"true\", a JetStream stream or consumer that no resource manages (made by hand or by scripts); \"*\" allows every namespace, \"\" none. Default: the operator's own namespace (POD_NAMESPACE, or its service account's namespace in a pod).")
	fs.StringVar(&o.jetStreamDomains, "jetstream-domains", "", "Comma-separated JetStream domains (e.g. leaf nodes' JetStream) that EventStreams on the operator's own NATS connection may name in spec.domain; \"*\" allows any, \"\" none (the default: resources then use the connection's own JetStream only). A resource with its own spec.connection may name any domain its Secret's credentials reach.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints (/readyz: caches synced, controllers started or standing by for the leader election lease, NATS connected).")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of Go's /debug/pprof endpoints, for profiling (e.g. 127.0.0.1:6060); \"0\" disables them. Unauthenticated: bind it to loopback.")
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	if o.resyncInterval < time.Second {
		return fmt.Errorf("--resync-interval must be at least 1s, got %s", o.resyncInterval)
	}
	// client-go's leader election refuses renewDeadline <= 1.2 × retryPeriod.
	if o.retryPeriod <= 0 || float64(o.renewDeadline) <= 1.2*float64(o.retryPeriod) || o.leaseDuration <= o.renewDeadline {
		return fmt.Errorf("leader election timings must satisfy --leader-election-lease-duration (%s) > --leader-election-renew-deadline (%s) > 1.2 × --leader-election-retry-period (%s) > 0",
			o.leaseDuration, o.renewDeadline, o.retryPeriod)
	}
	// Checked again by controller.Setup; here so that a typo fails at once.
	if _, err := natsconn.ParseHostPatterns(splitList(o.resourceConnURLs)); err != nil {
		return fmt.Errorf("--resource-connection-urls: %w", err)
	}
	for _, d := range splitList(o.jetStreamDomains) {
		if d != "*" && !natsconn.ValidDomain(d) {
			return fmt.Errorf("--jetstream-domains: %q is not a JetStream domain name (letters, digits, '_' and '-') or \"*\"", d)
		}
	}
	metricsOpts, metricsCerts, err := metricsOptions(o)
	if err != nil {
		return err
	}
	mgrOpts := ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsOpts,
		// The operator never reads managedFields: leaving them out of the
		// cache saves memory and the deep copy of every cached Get.
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "eventstream-operator.events.giia.io",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		LeaseDuration:           &o.leaseDuration,
		RenewDeadline:           &o.renewDeadline,
		RetryPeriod:             &o.retryPeriod,
		// The manager exits when it loses the lease, so a new leader never
		// races the old one.
		LeaderElectionReleaseOnCancel: true,
	}
	if ns := splitList(o.watchNamespaces); len(ns) > 0 {
		mgrOpts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range ns {
			mgrOpts.Cache.DefaultNamespaces[n] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), mgrOpts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	if metricsCerts != nil {
		if err := mgr.Add(metricsCerts); err != nil {
			return fmt.Errorf("watching the metrics certificate: %w", err)
		}
	}

	o.nats.Name = "eventstream-operator"
	nc, err := natsconn.Connect(o.nats, ctrl.Log.WithName("nats"))
	if err != nil {
		return fmt.Errorf("configuring the NATS connection to %s: %w", admin.RedactURL(o.nats.URL), err)
	}
	defer nc.Close()
	if err := ctrlmetrics.Registry.Register(nc.Connected()); err != nil {
		return fmt.Errorf("registering the NATS connection metric: %w", err)
	}

	if err := controller.Setup(mgr, nc, controller.Options{
		ResyncInterval:           o.resyncInterval,
		MaxConcurrentReconciles:  o.maxConcurrentReconciles,
		AllowResourceConnections: o.allowResourceConns,
		AdoptNamespaces:          splitList(o.adoptNamespaces),
		ResourceConnectionURLs:   splitList(o.resourceConnURLs),
		JetStreamDomains:         splitList(o.jetStreamDomains),
		SchemaBucket:             o.schemaBucket,
	}); err != nil {
		return err
	}
	// /healthz; /readyz: caches synced, controllers started (or a standby
	// waiting for the lease), NATS connected (internal/health).
	if _, err := health.Setup(mgr, o.leaderElect, map[string]healthz.Checker{"nats": nc.ReadyCheck}); err != nil {
		return fmt.Errorf("adding the health checks: %w", err)
	}
	log.Info("starting manager", "nats", admin.RedactURL(o.nats.URL), "resync", o.resyncInterval,
		"workers", o.maxConcurrentReconciles, "namespaces", o.watchNamespaces, "adoptNamespaces", o.adoptNamespaces,
		"resourceConnections", o.allowResourceConns, "resourceConnectionURLs", o.resourceConnURLs,
		"jetStreamDomains", o.jetStreamDomains)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// metricsOptions configures the metrics server the way kubebuilder v4 does:
// with --metrics-secure (the default) HTTPS, every request authenticated and
// authorized by the API server (TokenReview, SubjectAccessReview for GET on
// the URL path), with the certificate from --metrics-cert-path (watched for
// renewals; the returned CertWatcher must be added to the manager) or a
// self-signed one; without it plain HTTP with no authentication.
func metricsOptions(o options) (metricsserver.Options, *certwatcher.CertWatcher, error) {
	opts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.secureMetrics,
		// HTTP/2 is disabled against the HTTP/2 rapid-reset CVEs.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if !o.secureMetrics {
		if o.metricsCertPath != "" {
			return opts, nil, fmt.Errorf("--metrics-cert-path=%s needs --metrics-secure", o.metricsCertPath)
		}
		return opts, nil, nil
	}
	opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	if o.metricsCertPath == "" {
		return opts, nil, nil
	}
	cw, err := certwatcher.New(filepath.Join(o.metricsCertPath, o.metricsCertName), filepath.Join(o.metricsCertPath, o.metricsCertKey))
	if err != nil {
		return opts, nil, fmt.Errorf("loading the metrics certificate (--metrics-cert-path, --metrics-cert-name, --metrics-cert-key): %w", err)
	}
	opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.GetCertificate = cw.GetCertificate })
	return opts, cw, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ownNamespace is the namespace the manager runs in: POD_NAMESPACE, else the
// namespace of the pod's service account, else "" (outside a cluster).
func ownNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
