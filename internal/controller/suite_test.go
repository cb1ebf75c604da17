package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/controller"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// The suite runs the real manager (controller.Setup, as cmd/main.go does)
// against envtest's kube-apiserver and etcd and an embedded nats-server with
// JetStream. Each Describe starts its own manager with the resync interval it
// needs; only one runs at a time.
var (
	restCfg *rest.Config
	k8s     client.Client
	natsSrv *eventstest.Server
	nc      *nats.Conn // the tests' own connection, for assertions
	js      jetstream.JetStream
	testEnv *envtest.Environment
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)

	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(),
		"KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds envtest's kube-apiserver and etcd")
	Expect(eventsv1.AddToScheme(scheme.Scheme)).To(Succeed())
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(restCfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())

	natsSrv, err = eventstest.StartJetStream("", eventstest.WithServerOptions(func(o *server.Options) {
		// Streams reserve their max bytes (1 GiB by default) against this.
		o.JetStreamMaxStore = 1 << 40
	}))
	Expect(err).NotTo(HaveOccurred())
	nc, err = nats.Connect(natsSrv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	Expect(err).NotTo(HaveOccurred())
	js, err = jetstream.New(nc)
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if nc != nil {
		nc.Close()
	}
	if natsSrv != nil {
		natsSrv.Close()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// startManager runs the operator's manager, with the suite's NATS as its
// default connection, per-resource connections allowed and adoption allowed
// in namespace "default" (as --adopt-namespaces=default), until the
// returned function is called (it waits for the manager to stop).
func startManager(resync time.Duration) (stop func()) {
	return startManagerWith(managerConfig{resync: resync, natsURL: natsSrv.URL(), allowResourceConnections: true,
		adoptNamespaces: []string{"default"}})
}

type managerConfig struct {
	resync                   time.Duration
	natsURL                  string
	allowResourceConnections bool
	adoptNamespaces          []string
	resourceConnectionURLs   []string // --resource-connection-urls
	namespaces               []string // --watch-namespaces; none: all
	jetStreamDomains         []string // --jetstream-domains
}

func startManagerWith(mc managerConfig) (stop func()) {
	var cacheOpts cache.Options
	if len(mc.namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range mc.namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Cache:                  cacheOpts,
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	conn, err := natsconn.Connect(natsconn.Options{URL: mc.natsURL, Name: "operator-under-test"}, logf.Log.WithName("nats"))
	Expect(err).NotTo(HaveOccurred())
	Expect(controller.Setup(mgr, conn, controller.Options{
		ResyncInterval: mc.resync, MaxConcurrentReconciles: 4, AllowResourceConnections: mc.allowResourceConnections,
		AdoptNamespaces:        mc.adoptNamespaces,
		ResourceConnectionURLs: mc.resourceConnectionURLs,
		JetStreamDomains:       mc.jetStreamDomains,
	})).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return func() {
		cancel()
		<-done
		conn.Close()
	}
}
