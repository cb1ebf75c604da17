package controller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsk8s "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/eventstest/natsauth"
)

// leakBuffer collects what the manager logs (through GinkgoWriter, which the
// suite's logger writes to).
type leakBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *leakBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *leakBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// leakServer starts a JetStream server with mod applied, for one spec.
func leakServer(mod func(*server.Options)) *eventstest.Server {
	GinkgoHelper()
	srv, err := eventstest.StartJetStream("", eventstest.WithServerOptions(func(o *server.Options) {
		o.JetStreamMaxStore = 1 << 40
		mod(o)
	}))
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(srv.Close)
	return srv
}

// closedPort returns a local address nothing listens on.
func closedPort() string {
	GinkgoHelper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := l.Addr().String()
	Expect(l.Close()).To(Succeed())
	return addr
}

// pemBody is a line from the middle of a PEM block: part of the key itself.
func pemBody(p []byte) string {
	lines := strings.Split(strings.TrimSpace(string(p)), "\n")
	return lines[len(lines)/2]
}

var _ = Describe("Secret values", Ordered, func() {
	ctx := context.Background()
	const opUser, opPassword = "operator", "leak-operator-Pw-51c3"
	var logs *leakBuffer

	BeforeAll(func() {
		// The suite's logger writes to GinkgoWriter: tee it into a buffer
		// for as long as these specs run (the manager's own logs, the
		// controllers', the NATS connections' and controller-runtime's
		// "Reconciler error" lines all go there).
		logs = &leakBuffer{}
		GinkgoWriter.TeeTo(logs)
		DeferCleanup(GinkgoWriter.ClearTeeWriters)

		// The operator's default connection also has a password, in its URL.
		opSrv := leakServer(func(o *server.Options) {
			o.Users = []*server.User{{Username: opUser, Password: opPassword}}
		})
		opURL := strings.Replace(opSrv.URL(), "nats://", "nats://"+opUser+":"+opPassword+"@", 1)
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: opURL, allowResourceConnections: true}))
	})

	It("never appear in logs, Kubernetes Events or status, whichever credential path is taken", func() {
		t := GinkgoT()
		const user, password, token = "tenant", "leak-tenant-Pw-9f2e", "leak-token-7d41c0"
		const wrongPassword, wrongToken, unreachablePassword = "leak-wrong-Pw-0b7a", "leak-wrong-token-e3a9", "leak-unreach-Pw-44d0"
		nk, otherNK := natsauth.NewNKey(t), natsauth.NewNKey(t)
		op := natsauth.NewOperator(t)
		jwtUser := op.NewAccount(t, "TENANT", true).NewUser(t, "tenant")
		intruder := natsauth.UntrustedUser(t)
		pki, otherCA := natsauth.NewPKI(t), natsauth.NewPKI(t)
		badSeed := []byte(string(nk.Seed))
		badSeed[20] ^= 1 // no longer a valid seed

		userSrv := leakServer(func(o *server.Options) { o.Users = []*server.User{{Username: user, Password: password}} })
		tokenSrv := leakServer(func(o *server.Options) { o.Authorization = token })
		nkeySrv := leakServer(func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: nk.Pub}} })
		jwtSrv := leakServer(op.ServerOptions)
		tlsOpts := pki.ServerOptions(t, true)
		mtlsSrv := leakServer(tlsOpts)
		withUser := func(url, userinfo string) string { return strings.Replace(url, "nats://", "nats://"+userinfo+"@", 1) }

		secrets := []string{
			opPassword, password, token, wrongPassword, wrongToken, unreachablePassword,
			string(nk.Seed), string(otherNK.Seed), string(badSeed),
			string(jwtUser.Seed), jwtUser.JWT, string(intruder.Seed), intruder.JWT,
			pemBody(pki.ClientKeyPEM), pemBody(otherCA.ClientKeyPEM), pemBody(pki.ServerKeyPEM),
		}

		type credCase struct {
			name string
			data map[string]string
			want string // Ready condition "Status/Reason"
		}
		mtls := func(ca, cert, key []byte) map[string]string {
			return map[string]string{"url": mtlsSrv.URL(), "ca.crt": string(ca), "tls.crt": string(cert), "tls.key": string(key)}
		}
		ready := "True/" + eventsv1.ReasonCreated
		unavailable := "False/" + eventsv1.ReasonNatsUnavailable
		invalid := "False/" + eventsv1.ReasonInvalidSpec
		cases := []credCase{
			{"password", map[string]string{"url": userSrv.URL(), "user": user, "password": password}, ready},
			{"password-in-url", map[string]string{"url": withUser(userSrv.URL(), user+":"+password)}, ready},
			{"token", map[string]string{"url": tokenSrv.URL(), "token": token}, ready},
			{"nkey", map[string]string{"url": nkeySrv.URL(), "nkey": string(nk.Seed)}, ready},
			{"creds", map[string]string{"url": jwtSrv.URL(), "creds": string(jwtUser.Creds)}, ready},
			{"mtls", mtls(pki.CAPEM, pki.ClientCertPEM, pki.ClientKeyPEM), ready},

			{"wrong-password", map[string]string{"url": userSrv.URL(), "user": user, "password": wrongPassword}, unavailable},
			{"wrong-password-in-url", map[string]string{"url": withUser(userSrv.URL(), user+":"+wrongPassword)}, unavailable},
			{"wrong-token", map[string]string{"url": tokenSrv.URL(), "token": wrongToken}, unavailable},
			{"wrong-token-in-url", map[string]string{"url": withUser(tokenSrv.URL(), wrongToken)}, unavailable},
			{"other-nkey", map[string]string{"url": nkeySrv.URL(), "nkey": string(otherNK.Seed)}, unavailable},
			{"untrusted-creds", map[string]string{"url": jwtSrv.URL(), "creds": string(intruder.Creds)}, unavailable},
			{"wrong-ca", mtls(otherCA.CAPEM, pki.ClientCertPEM, pki.ClientKeyPEM), unavailable},
			{"client-cert-of-other-ca", mtls(pki.CAPEM, otherCA.ClientCertPEM, otherCA.ClientKeyPEM), unavailable},
			{"unreachable", map[string]string{"url": "nats://" + user + ":" + unreachablePassword + "@" + closedPort(),
				"user": user, "password": unreachablePassword}, unavailable},

			{"no-url", map[string]string{"user": user, "password": password, "token": token}, invalid},
			{"invalid-nkey", map[string]string{"url": nkeySrv.URL(), "nkey": string(badSeed)}, invalid},
			{"invalid-creds", map[string]string{"url": jwtSrv.URL(), "creds": "password=" + password}, invalid},
			{"mismatched-key", mtls(pki.CAPEM, pki.ClientCertPEM, otherCA.ClientKeyPEM), invalid},
			{"key-without-cert", map[string]string{"url": mtlsSrv.URL(), "ca.crt": string(pki.CAPEM), "tls.key": string(pki.ClientKeyPEM)}, invalid},
		}

		var streams []*eventsv1.EventStream
		var consumers []*eventsv1.EventConsumer
		for _, c := range cases {
			secret := uniqueName("leak-" + c.name)
			connectionSecret(secret, c.data)
			evs := newStream(uniqueName("leak-"+c.name), withConnection(secret))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			streams = append(streams, evs)
			DeferCleanup(func() { deleteAndWait(evs) })
			// A consumer follows its stream's connection.
			evc := newConsumer(uniqueName("leak-"+c.name), evs.Name)
			Expect(k8s.Create(ctx, evc)).To(Succeed())
			consumers = append(consumers, evc)
			DeferCleanup(func() { deleteConsumerAndWait(evc) })
		}
		for i, c := range cases {
			Eventually(readyReason(streams[i])).Should(Equal(c.want), "stream of case %s", c.name)
			if c.want == ready {
				Eventually(consumerReady(consumers[i])).Should(HavePrefix("True/"), "consumer of case %s", c.name)
			} else {
				Eventually(consumerReady(consumers[i])).Should(HavePrefix("False/"), "consumer of case %s", c.name)
			}
		}
		// Let failing reconciles be retried and logged a few more times.
		time.Sleep(2 * time.Second)

		expectNoSecret := func(where, text string) {
			GinkgoHelper()
			for _, s := range secrets {
				Expect(strings.Contains(text, s)).To(BeFalse(), "%s contains the secret %q:\n%s", where, s, text)
			}
			Expect(text).NotTo(ContainSubstring("PRIVATE KEY"), "%s contains a private key", where)
		}

		// Logs.
		logged := logs.String()
		Expect(logged).To(ContainSubstring("leak-"), "the tee captured the manager's logs")
		expectNoSecret("the manager's log", logged)

		// Kubernetes Events (every one in the namespace, not only ours).
		evList := &eventsk8s.EventList{}
		Expect(k8s.List(ctx, evList, client.InNamespace("default"))).To(Succeed())
		Expect(evList.Items).NotTo(BeEmpty())
		for _, ev := range evList.Items {
			expectNoSecret("Event "+ev.Name, strings.Join([]string{ev.Reason, ev.Note, ev.Action}, "\n"))
		}
		coreEvents := &corev1.EventList{}
		Expect(k8s.List(ctx, coreEvents, client.InNamespace("default"))).To(Succeed())
		for _, ev := range coreEvents.Items {
			expectNoSecret("Event "+ev.Name, ev.Reason+"\n"+ev.Message)
		}

		// Status of every EventStream and EventConsumer.
		evsList := &eventsv1.EventStreamList{}
		Expect(k8s.List(ctx, evsList, client.InNamespace("default"))).To(Succeed())
		for _, s := range evsList.Items {
			b, err := json.Marshal(s.Status)
			Expect(err).NotTo(HaveOccurred())
			expectNoSecret("status of EventStream "+s.Name, string(b))
		}
		evcList := &eventsv1.EventConsumerList{}
		Expect(k8s.List(ctx, evcList, client.InNamespace("default"))).To(Succeed())
		for _, c := range evcList.Items {
			b, err := json.Marshal(c.Status)
			Expect(err).NotTo(HaveOccurred())
			expectNoSecret("status of EventConsumer "+c.Name, string(b))
		}

		// And the messages do say what is wrong.
		for i, c := range cases {
			cond := readyCondition(streams[i])
			Expect(cond).NotTo(BeNil())
			GinkgoWriter.Printf("%-24s %s/%s: %s\n", c.name, cond.Status, cond.Reason, cond.Message)
			if c.want == unavailable {
				Expect(cond.Message).NotTo(BeEmpty())
			}
		}
	})
})

// The operator's default connection with a token in --nats-url: nats.go's
// ConnectedUrlRedacted hides a password but not a token (nats://TOKEN@host),
// so the operator redacts URLs itself.
var _ = Describe("Secret values in the operator's own URL", Ordered, func() {
	const opToken = "leak-operator-token-a8c2"
	var logs *leakBuffer

	BeforeAll(func() {
		logs = &leakBuffer{}
		GinkgoWriter.TeeTo(logs)
		DeferCleanup(GinkgoWriter.ClearTeeWriters)
		opSrv := leakServer(func(o *server.Options) { o.Authorization = opToken })
		opURL := strings.Replace(opSrv.URL(), "nats://", "nats://"+opToken+"@", 1)
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: opURL, allowResourceConnections: true}))
	})

	It("never logs a token given in --nats-url", func() {
		evs := newStream(uniqueName("leak-optoken"))
		Expect(k8s.Create(context.Background(), evs)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(evs) })
		expectReady(evs)
		Expect(logs.String()).To(ContainSubstring("connected to NATS"))
		Expect(logs.String()).NotTo(ContainSubstring(opToken))
	})
})
