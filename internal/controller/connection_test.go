package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// recordingAuth accepts one user/password and records every credential any
// client presented.
type recordingAuth struct {
	user, password string
	denySubscribe  []string // subjects the user may not subscribe to
	mu             sync.Mutex
	seen           []string
}

func (a *recordingAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	a.mu.Lock()
	a.seen = append(a.seen, fmt.Sprintf("user=%q password=%q token=%q nkey=%q jwt=%q", o.Username, o.Password, o.Token, o.Nkey, o.JWT))
	a.mu.Unlock()
	ok := o.Username == a.user && o.Password == a.password
	if ok && len(a.denySubscribe) > 0 {
		c.RegisterUser(&server.User{Username: o.Username, Permissions: &server.Permissions{
			Subscribe: &server.SubjectPermission{Deny: a.denySubscribe},
		}})
	}
	return ok
}

func (a *recordingAuth) attempts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// authServer starts a JetStream server that accepts only user/password.
func authServer(auth server.Authentication) *eventstest.Server {
	GinkgoHelper()
	srv, err := eventstest.StartJetStream("", eventstest.WithServerOptions(func(o *server.Options) {
		o.CustomClientAuthentication = auth
		o.JetStreamMaxStore = 1 << 40
	}))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(srv.Close)
	return srv
}

func connectionSecret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, StringData: data}
	ExpectWithOffset(1, k8s.Create(context.Background(), s)).To(Succeed())
	DeferCleanup(func() { _ = k8s.Delete(context.Background(), s) })
	return s
}

func withConnection(secret string) streamOpt {
	return func(e *eventsv1.EventStream) {
		e.Spec.Connection = &eventsv1.ConnectionSpec{SecretRef: eventsv1.LocalObjectReference{Name: secret}}
	}
}

var _ = Describe("Per-resource connections", Ordered, func() {
	ctx := context.Background()
	const operatorUser, operatorPassword = "operator", "operator-secret-pw"
	var operatorAuth, tenantAuth *recordingAuth
	var tenantSrv *eventstest.Server
	var tenantJS jetstream.JetStream

	BeforeAll(func() {
		operatorAuth = &recordingAuth{user: operatorUser, password: operatorPassword}
		opSrv := authServer(operatorAuth)
		tenantAuth = &recordingAuth{user: "tenant", password: "tenant-pw"}
		tenantSrv = authServer(tenantAuth)
		nc, err := nats.Connect(tenantSrv.URL(), nats.UserInfo("tenant", "tenant-pw"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(nc.Close)
		tenantJS, err = jetstream.New(nc)
		Expect(err).NotTo(HaveOccurred())

		opURL := strings.Replace(opSrv.URL(), "nats://", "nats://"+operatorUser+":"+operatorPassword+"@", 1)
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: opURL, allowResourceConnections: true}))
	})

	It("manages a tenant's stream on the tenant's server, with the tenant's credentials only", func() {
		connectionSecret("tenant-nats", map[string]string{"url": tenantSrv.URL(), "user": "tenant", "password": "tenant-pw"})
		evs := newStream(uniqueName("tenant"), withConnection("tenant-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)

		_, err := tenantJS.Stream(ctx, evs.JetStreamName())
		Expect(err).NotTo(HaveOccurred(), "the stream is on the tenant's server")
		// A consumer of that stream lives on the same server.
		evc := newConsumer(uniqueName("tenant-consumer"), evs.Name)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))
		_, err = tenantJS.Consumer(ctx, evs.JetStreamName(), evc.Name)
		Expect(err).NotTo(HaveOccurred())

		// Drift on the tenant's server is repaired promptly too.
		Expect(tenantJS.DeleteStream(ctx, evs.JetStreamName())).To(Succeed())
		Eventually(func() error { _, err := tenantJS.Stream(ctx, evs.JetStreamName()); return err }, 5*time.Second).Should(Succeed(),
			func() string { // what the operator last recorded, should this ever fail again
				return fmt.Sprintf("not recreated on the tenant's server; Ready condition now: %+v", readyCondition(evs))
			})

		for _, a := range tenantAuth.attempts() {
			Expect(a).NotTo(ContainSubstring(operatorPassword))
			Expect(a).NotTo(ContainSubstring(`user="` + operatorUser + `"`))
		}
		Expect(tenantAuth.attempts()).NotTo(BeEmpty())
		deleteConsumerAndWait(evc)
		deleteAndWait(evs)
		Eventually(func() error { _, err := tenantJS.Stream(ctx, evs.JetStreamName()); return err }).Should(MatchError(jetstream.ErrStreamNotFound))
	})

	It("repairs a deletion on a tenant's server whose advisory never arrives, within seconds", func() {
		// nats-server can lose a stream's DELETED advisory under load; here
		// the tenant's user may not receive advisories at all, so only the
		// deletion audit, which runs every few seconds on every connection,
		// can notice (the resync is a minute away).
		blindAuth := &recordingAuth{user: "blind", password: "blind-pw", denySubscribe: []string{"$JS.EVENT.ADVISORY.>"}}
		blindSrv := authServer(blindAuth)
		connectionSecret("blind-nats", map[string]string{"url": blindSrv.URL(), "user": "blind", "password": "blind-pw"})
		evs := newStream(uniqueName("blind"), withConnection("blind-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)
		nc, err := nats.Connect(blindSrv.URL(), nats.UserInfo("blind", "blind-pw"))
		Expect(err).NotTo(HaveOccurred())
		defer nc.Close()
		js, err := jetstream.New(nc)
		Expect(err).NotTo(HaveOccurred())

		Expect(js.DeleteStream(ctx, evs.JetStreamName())).To(Succeed())
		Eventually(func() error { _, err := js.Stream(ctx, evs.JetStreamName()); return err }, 8*time.Second).Should(Succeed(),
			"recreated by the deletion audit, without an advisory, long before the resync")
		deleteAndWait(evs)
	})

	It("never sends the operator's credentials to a server a tenant names without credentials", func() {
		connectionSecret("no-creds", map[string]string{"url": tenantSrv.URL()})
		before := len(tenantAuth.attempts())
		evs := newStream(uniqueName("nocreds"), withConnection("no-creds"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonNatsUnavailable))
		Eventually(func() int { return len(tenantAuth.attempts()) }).Should(BeNumerically(">", before))
		for _, a := range tenantAuth.attempts() {
			Expect(a).NotTo(ContainSubstring(operatorPassword))
			Expect(a).NotTo(ContainSubstring(`user="` + operatorUser + `"`))
		}
		cond := readyCondition(evs)
		Expect(cond.Message).NotTo(ContainSubstring("tenant-pw"))
		deleteAndWait(evs)
	})

	It("reports a missing Secret or url as InvalidSpec", func() {
		evs := newStream(uniqueName("nosecret"), withConnection("does-not-exist"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonInvalidSpec))
		Expect(readyCondition(evs).Message).To(ContainSubstring(`Secret "does-not-exist" not found`))
		deleteAndWait(evs)

		connectionSecret("no-url", map[string]string{"user": "tenant", "password": "tenant-pw"})
		evs = newStream(uniqueName("nourl"), withConnection("no-url"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonInvalidSpec))
		Expect(readyCondition(evs).Message).To(ContainSubstring(`no "url" key`))
		Expect(readyCondition(evs).Message).NotTo(ContainSubstring("tenant-pw"))
		deleteAndWait(evs)
	})

	It("uses a changed Secret from the next reconcile of the resource on, and closes the old connection", func() {
		oldAuth := &recordingAuth{user: "tenant-old", password: "old-pw"}
		oldSrv := authServer(oldAuth)
		newAuth := &recordingAuth{user: "tenant-new", password: "new-pw"}
		newSrv := authServer(newAuth)
		secret := connectionSecret("moving-nats", map[string]string{"url": oldSrv.URL(), "user": "tenant-old", "password": "old-pw"})
		evs := newStream(uniqueName("moving"), withConnection("moving-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)
		Expect(streamOn(oldSrv, "tenant-old", "old-pw", evs.JetStreamName())).To(Succeed())
		Expect(operatorClients(oldSrv)).To(Equal(1), "the operator's connection to the old server")

		// The tenant moves to another server with other credentials.
		secret.StringData = map[string]string{"url": newSrv.URL(), "user": "tenant-new", "password": "new-pw"}
		Expect(k8s.Update(ctx, secret)).To(Succeed())
		// A Secret is not watched: nothing changes before the resource's
		// next reconcile (its resync is a minute away).
		Consistently(func() error { return streamOn(newSrv, "tenant-new", "new-pw", evs.JetStreamName()) }, 2*time.Second).ShouldNot(Succeed())
		Expect(operatorClients(newSrv)).To(BeZero(), "the operator connected to the new server before a reconcile")

		// Any change to the resource reconciles it.
		latest := get(evs)
		latest.Annotations = map[string]string{"example.com/poke": "1"}
		Expect(k8s.Update(ctx, latest)).To(Succeed())
		Eventually(func() error { return streamOn(newSrv, "tenant-new", "new-pw", evs.JetStreamName()) }).Should(Succeed())
		Eventually(func() int { return operatorClients(oldSrv) }).Should(BeZero(), "the connection to the old server is closed")
		Expect(operatorClients(newSrv)).To(Equal(1))
		expectReady(evs)
		for _, a := range newAuth.attempts() {
			Expect(a).NotTo(ContainSubstring("old-pw"))
		}
		deleteAndWait(evs)
	})
})

// operatorClients counts the operator's per-resource connections to srv
// (the pool names them "eventstream-operator").
func operatorClients(srv *eventstest.Server) int {
	GinkgoHelper()
	connz, err := srv.NATSServer().Connz(&server.ConnzOptions{})
	Expect(err).NotTo(HaveOccurred())
	n := 0
	for _, c := range connz.Conns {
		if c.Name == "eventstream-operator" {
			n++
		}
	}
	return n
}

// streamOn checks that the stream exists on srv, with a connection of its
// own that is closed before it returns.
func streamOn(srv *eventstest.Server, user, password, stream string) error {
	var opts []nats.Option
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	nc, err := nats.Connect(srv.URL(), opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = js.Stream(ctx, stream)
	return err
}

// refusedConnection checks a resource whose connection the operator must
// refuse: Ready=False with ConnectionNotAllowed and a message containing
// each of want, a Warning Event, and no connection ever made to srv.
func refusedConnection(evs *eventsv1.EventStream, srv *eventstest.Server, want ...string) {
	GinkgoHelper()
	Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonConnectionNotAllowed))
	msg := readyCondition(evs).Message
	for _, w := range want {
		Expect(msg).To(ContainSubstring(w))
	}
	Eventually(eventReasons(evs)).Should(ContainElement(eventsv1.ReasonConnectionNotAllowed))
	// The reconcile that set the condition is over; the server never saw
	// the operator, not even a refused attempt.
	Consistently(func() int64 {
		v, err := srv.NATSServer().Varz(nil)
		Expect(err).NotTo(HaveOccurred())
		return int64(v.TotalConnections)
	}, time.Second).Should(BeZero(), "a connection was made to a server the operator must not dial")
}

var _ = Describe("Per-resource connections disabled (the default)", Ordered, func() {
	BeforeAll(func() {
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: natsSrv.URL(), allowResourceConnections: false}))
	})

	It("refuses spec.connection with ConnectionNotAllowed, without dialling the tenant's server", func() {
		tenant, err := eventstest.StartJetStream("")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(tenant.Close)
		connectionSecret("off-nats", map[string]string{"url": tenant.URL()})
		evs := newStream(uniqueName("refused"), withConnection("off-nats"))
		Expect(k8s.Create(context.Background(), evs)).To(Succeed())
		refusedConnection(evs, tenant, "per-resource connections are disabled", "--allow-resource-connections", `"off-nats"`)
		deleteAndWait(evs)
	})
})

var _ = Describe("Per-resource connections restricted by --resource-connection-urls", Ordered, func() {
	ctx := context.Background()
	var allowed, other *eventstest.Server
	var allowedPort string

	BeforeAll(func() {
		var err error
		allowed, err = eventstest.StartJetStream("", eventstest.WithServerOptions(func(o *server.Options) { o.JetStreamMaxStore = 1 << 40 }))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(allowed.Close)
		other, err = eventstest.StartJetStream("")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(other.Close)
		allowedPort = strings.TrimPrefix(allowed.URL(), "nats://127.0.0.1:")
		// Hosts compare by name, without DNS: "localhost" is allowed,
		// "127.0.0.1" is not, although both reach the same address.
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: natsSrv.URL(), allowResourceConnections: true,
			resourceConnectionURLs: []string{"localhost:" + allowedPort, "*.nats.example.invalid"}}))
	})

	It("manages a stream on an allowed host", func() {
		connectionSecret("allowed-nats", map[string]string{"url": "nats://LocalHost:" + allowedPort})
		evs := newStream(uniqueName("allowed"), withConnection("allowed-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)
		Expect(streamOn(allowed, "", "", evs.JetStreamName())).To(Succeed())
		deleteAndWait(evs)
	})

	It("refuses a host that matches no pattern, naming it and the flag, without dialling it", func() {
		otherPort := strings.TrimPrefix(other.URL(), "nats://127.0.0.1:")
		connectionSecret("other-nats", map[string]string{"url": "nats://user:hunter2@localhost:" + otherPort})
		evs := newStream(uniqueName("disallowed"), withConnection("other-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		refusedConnection(evs, other, `"localhost:`+otherPort+`"`, "--resource-connection-urls", "localhost:"+allowedPort, `"other-nats"`)
		Expect(readyCondition(evs).Message).NotTo(ContainSubstring("hunter2"))
		deleteAndWait(evs)
	})

	It("refuses a list of URLs if any of them is not allowed, and a URL it cannot parse", func() {
		otherPort := strings.TrimPrefix(other.URL(), "nats://127.0.0.1:")
		connectionSecret("mixed-nats", map[string]string{"url": "nats://localhost:" + allowedPort + ",nats://127.0.0.1:" + otherPort})
		evs := newStream(uniqueName("mixed"), withConnection("mixed-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		refusedConnection(evs, other, `"127.0.0.1:`+otherPort+`"`)
		deleteAndWait(evs)

		connectionSecret("garbage-nats", map[string]string{"url": "nats://localhost:" + allowedPort + "x"})
		evs = newStream(uniqueName("garbage"), withConnection("garbage-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonConnectionNotAllowed))
		Expect(readyCondition(evs).Message).To(ContainSubstring("invalid port"))
		deleteAndWait(evs)
	})
})
