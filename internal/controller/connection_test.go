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
	mu             sync.Mutex
	seen           []string
}

func (a *recordingAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	a.mu.Lock()
	a.seen = append(a.seen, fmt.Sprintf("user=%q password=%q token=%q nkey=%q jwt=%q", o.Username, o.Password, o.Token, o.Nkey, o.JWT))
	a.mu.Unlock()
	return o.Username == a.user && o.Password == a.password
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
})

var _ = Describe("Per-resource connections disabled", Ordered, func() {
	BeforeAll(func() {
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: natsSrv.URL(), allowResourceConnections: false}))
	})

	It("refuses spec.connection with a message saying so", func() {
		evs := newStream(uniqueName("refused"), withConnection("whatever"))
		Expect(k8s.Create(context.Background(), evs)).To(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonInvalidSpec))
		Expect(readyCondition(evs).Message).To(ContainSubstring("per-resource connections are disabled"))
		deleteAndWait(evs)
	})
})
