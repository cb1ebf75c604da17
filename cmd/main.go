// Command manager runs the eventstream-operator: it reconciles EventStream
// resources into NATS JetStream streams.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/controller"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
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
	leaderElect             bool
	leaderElectionNamespace string
	metricsAddr             string
	probeAddr               string
	pprofAddr               string
	secureMetrics           bool
	allowResourceConns      bool
	resourceConnURLs        string
}

func main() {
	var o options
	flag.StringVar(&o.nats.URL, "nats-url", envOr("NATS_URL", "nats://127.0.0.1:4222"), "NATS server URL(s), comma-separated. Env: NATS_URL.")
	flag.StringVar(&o.nats.CredsFile, "nats-creds", "", "Path to a NATS credentials file (mounted from a Secret).")
	flag.StringVar(&o.nats.TLSCA, "nats-tls-ca", "", "Path to the CA certificate that signs the NATS server's certificate.")
	flag.StringVar(&o.nats.TLSCert, "nats-tls-cert", "", "Path to the client certificate for NATS (mutual TLS).")
	flag.StringVar(&o.nats.TLSKey, "nats-tls-key", "", "Path to the client key for NATS (mutual TLS).")
	flag.DurationVar(&o.resyncInterval, "resync-interval", time.Minute, "How often each resource is checked against JetStream (jittered 10%); advisories repair drift sooner.")
	flag.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "Reconcile workers per kind.")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Enable leader election, for running more than one replica.")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election lease (default: the pod's namespace).")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; \"0\" disables it.")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with authentication and authorization.")
	flag.BoolVar(&o.allowResourceConns, "allow-resource-connections", false, "Let EventStreams name their own NATS server and credentials through spec.connection.secretRef (the operator then reads those Secrets, and only those). Off: such resources are refused with reason ConnectionNotAllowed.")
	flag.StringVar(&o.resourceConnURLs, "resource-connection-urls", "", "With --allow-resource-connections: comma-separated host patterns the Secrets' URLs must match, each host, host:port, *.domain or *.domain:port (\"*.\" matches one or more labels; no port means 4222; no DNS lookups). Empty allows any host.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of Go's /debug/pprof endpoints, for profiling (e.g. 127.0.0.1:6060); \"0\" disables them. Unauthenticated: bind it to loopback.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(o); err != nil {
		ctrl.Log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	if o.resyncInterval < time.Second {
		return fmt.Errorf("--resync-interval must be at least 1s, got %s", o.resyncInterval)
	}
	// Checked again by controller.Setup; here so that a typo fails at once.
	if _, err := natsconn.ParseHostPatterns(splitList(o.resourceConnURLs)); err != nil {
		return fmt.Errorf("--resource-connection-urls: %w", err)
	}
	mgrOpts := ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress:   o.metricsAddr,
			SecureServing: o.secureMetrics,
			// HTTP/2 is disabled against the HTTP/2 rapid-reset CVEs.
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
		},
		// The operator never reads managedFields: leaving them out of the
		// cache saves memory and the deep copy of every cached Get.
		Cache:                   cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "eventstream-operator.events.giia.io",
		LeaderElectionNamespace: o.leaderElectionNamespace,
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

	o.nats.Name = "eventstream-operator"
	nc, err := natsconn.Connect(o.nats, ctrl.Log.WithName("nats"))
	if err != nil {
		return fmt.Errorf("configuring the NATS connection to %s: %w", events.RedactURL(o.nats.URL), err)
	}
	defer nc.Close()

	if err := controller.Setup(mgr, nc, controller.Options{
		ResyncInterval:           o.resyncInterval,
		MaxConcurrentReconciles:  o.maxConcurrentReconciles,
		AllowResourceConnections: o.allowResourceConns,
		ResourceConnectionURLs:   splitList(o.resourceConnURLs),
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("nats", nc.ReadyCheck); err != nil {
		return err
	}
	log.Info("starting manager", "nats", events.RedactURL(o.nats.URL), "resync", o.resyncInterval,
		"workers", o.maxConcurrentReconciles, "namespaces", o.watchNamespaces,
		"resourceConnections", o.allowResourceConns, "resourceConnectionURLs", o.resourceConnURLs)
	return mgr.Start(ctrl.SetupSignalHandler())
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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
