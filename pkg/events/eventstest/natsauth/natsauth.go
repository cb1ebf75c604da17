// Package natsauth builds NATS authentication and TLS fixtures for tests:
// a certificate authority with server and client certificates generated
// with crypto/x509 into a temporary directory, an operator / account / user
// JWT setup signed with nkeys and served from a memory account resolver,
// nkey users and credentials files. Everything is generated per test; no
// key material is checked in.
//
// It is part of the test kit so that the library's own tests and the
// operator's can share it; services may use it to test their NATS
// credentials and TLS settings against eventstest's embedded server.
//
// Functions take a T, which both *testing.T and Ginkgo's GinkgoT() satisfy.
package natsauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// T is the part of testing.TB the helpers need (GinkgoT() has it too).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	TempDir() string
}

// ---------------------------------------------------------------------------
// TLS

// PKI is a certificate authority with one server certificate (for 127.0.0.1
// and localhost) and one client certificate, as PEM in memory and as files in
// Dir.
type PKI struct {
	Dir string

	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string

	CAPEM, ServerCertPEM, ServerKeyPEM, ClientCertPEM, ClientKeyPEM []byte

	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

// NewPKI generates a CA and its server and client certificates (ECDSA P-256,
// valid for an hour) and writes them to a new temporary directory.
func NewPKI(t T) *PKI {
	t.Helper()
	p, err := newPKI(t.TempDir())
	if err != nil {
		t.Fatalf("natsauth: generate certificates: %v", err)
	}
	return p
}

func newPKI(dir string) (*PKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "natsauth test CA", Organization: []string{"eventstream-operator tests"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &PKI{Dir: dir, CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), caCert: caCert, caKey: caKey, serial: 1}
	if p.ServerCertPEM, p.ServerKeyPEM, err = p.leaf("nats-server", x509.ExtKeyUsageServerAuth, true); err != nil {
		return nil, err
	}
	if p.ClientCertPEM, p.ClientKeyPEM, err = p.leaf("nats-client", x509.ExtKeyUsageClientAuth, false); err != nil {
		return nil, err
	}
	files := []struct {
		path *string
		name string
		data []byte
	}{
		{&p.CAFile, "ca.crt", p.CAPEM},
		{&p.ServerCertFile, "server.crt", p.ServerCertPEM},
		{&p.ServerKeyFile, "server.key", p.ServerKeyPEM},
		{&p.ClientCertFile, "client.crt", p.ClientCertPEM},
		{&p.ClientKeyFile, "client.key", p.ClientKeyPEM},
	}
	for _, f := range files {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// leaf issues a certificate signed by the CA (ECDSA P-256, valid for an
// hour), for 127.0.0.1, ::1 and localhost when server is set.
func (p *PKI) leaf(cn string, usage x509.ExtKeyUsage, server bool) (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if server {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// NewClientCert issues another client certificate with common name cn from
// the same CA (a rotated certificate), as PEM.
func (p *PKI) NewClientCert(t T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := p.leaf(cn, x509.ExtKeyUsageClientAuth, false)
	if err != nil {
		t.Fatalf("natsauth: issue client certificate: %v", err)
	}
	return certPEM, keyPEM
}

// ServerTLSConfig is the server side: the server certificate and, with
// verifyClients, client certificates required and verified against the CA.
func (p *PKI) ServerTLSConfig(verifyClients bool) (*tls.Config, error) {
	return server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: p.ServerCertFile,
		KeyFile:  p.ServerKeyFile,
		CaFile:   p.CAFile,
		Verify:   verifyClients,
		Timeout:  2,
	})
}

// ServerOptions returns an option function for server.Options (for example
// through eventstest.WithServerOptions) that makes the server require TLS
// and, with verifyClients, a client certificate signed by the CA.
func (p *PKI) ServerOptions(t T, verifyClients bool) func(*server.Options) {
	t.Helper()
	cfg, err := p.ServerTLSConfig(verifyClients)
	if err != nil {
		t.Fatalf("natsauth: server TLS config: %v", err)
	}
	return func(o *server.Options) {
		o.TLS = true
		o.TLSVerify = verifyClients
		o.TLSConfig = cfg
		o.TLSTimeout = 2
	}
}

// ---------------------------------------------------------------------------
// JWT: operator, accounts, users

// Operator is a trusted operator with a system account, and the memory
// resolver holding the account JWTs it signs.
type Operator struct {
	KP       nkeys.KeyPair
	Pub      string
	JWT      string
	System   *Account
	Resolver *server.MemAccResolver
	claims   *jwt.OperatorClaims
}

// Account is an account signed by an operator.
type Account struct {
	Name string
	KP   nkeys.KeyPair
	Pub  string
	JWT  string
}

// User is a user signed by an account.
type User struct {
	Name  string
	Pub   string
	Seed  []byte // the secret: "SU..."
	JWT   string
	Creds []byte // a credentials file: the JWT and the seed, decorated
}

// NewOperator creates an operator and its system account (stored in the
// operator's resolver).
func NewOperator(t T) *Operator {
	t.Helper()
	kp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatalf("natsauth: operator key: %v", err)
	}
	pub, _ := kp.PublicKey()
	op := &Operator{KP: kp, Pub: pub, Resolver: &server.MemAccResolver{}}
	op.System = op.NewAccount(t, "SYS", false)
	claims := jwt.NewOperatorClaims(pub)
	claims.Name = "natsauth-operator"
	claims.SystemAccount = op.System.Pub
	if op.JWT, err = claims.Encode(kp); err != nil {
		t.Fatalf("natsauth: operator JWT: %v", err)
	}
	if op.claims, err = jwt.DecodeOperatorClaims(op.JWT); err != nil {
		t.Fatalf("natsauth: decode operator JWT: %v", err)
	}
	return op
}

// NewAccount creates an account signed by the operator and stores it in the
// resolver; withJetStream gives it unlimited JetStream.
func (o *Operator) NewAccount(t T, name string, withJetStream bool) *Account {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatalf("natsauth: account key: %v", err)
	}
	pub, _ := kp.PublicKey()
	claims := jwt.NewAccountClaims(pub)
	claims.Name = name
	if withJetStream {
		claims.Limits.JetStreamLimits = jwt.JetStreamLimits{
			MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
		}
	}
	token, err := claims.Encode(o.KP)
	if err != nil {
		t.Fatalf("natsauth: account JWT: %v", err)
	}
	if err := o.Resolver.Store(pub, token); err != nil {
		t.Fatalf("natsauth: store account JWT: %v", err)
	}
	return &Account{Name: name, KP: kp, Pub: pub, JWT: token}
}

// ServerOptions configures a server to trust the operator (operator mode,
// accounts from the memory resolver). Use it before the server starts.
func (o *Operator) ServerOptions(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{o.claims}
	opts.AccountResolver = o.Resolver
	opts.SystemAccount = o.System.Pub
}

// NewUser creates a user of the account.
func (a *Account) NewUser(t T, name string) *User {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("natsauth: user key: %v", err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	claims := jwt.NewUserClaims(pub)
	claims.Name = name
	token, err := claims.Encode(a.KP)
	if err != nil {
		t.Fatalf("natsauth: user JWT: %v", err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatalf("natsauth: format creds: %v", err)
	}
	return &User{Name: name, Pub: pub, Seed: seed, JWT: token, Creds: creds}
}

// UntrustedUser returns a well-formed user whose account belongs to another
// operator: a server trusting o refuses it.
func UntrustedUser(t T) *User {
	t.Helper()
	return NewOperator(t).NewAccount(t, "UNTRUSTED", true).NewUser(t, "intruder")
}

// WriteCreds writes the user's credentials file into dir (a new temporary
// directory when empty) and returns its path.
func (u *User) WriteCreds(t T, dir string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, u.Name+".creds")
	if err := os.WriteFile(path, u.Creds, 0o600); err != nil {
		t.Fatalf("natsauth: write creds: %v", err)
	}
	return path
}

// ---------------------------------------------------------------------------
// Plain nkeys

// NKey is an nkey user: the public key the server knows and the seed the
// client signs with.
type NKey struct {
	Pub  string
	Seed []byte
}

// NewNKey creates an nkey user key pair.
func NewNKey(t T) NKey {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatalf("natsauth: nkey: %v", err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	return NKey{Pub: pub, Seed: seed}
}

// WriteSeed writes the seed to a file in dir (a new temporary directory when
// empty) and returns its path.
func (k NKey) WriteSeed(t T, dir string) string {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(path, k.Seed, 0o600); err != nil {
		t.Fatalf("natsauth: write seed: %v", err)
	}
	return path
}

// ---------------------------------------------------------------------------
// Rotation: files replaced on disk, the server's view of a client

// ReplaceFile replaces path with data the way the kubelet updates a mounted
// Secret (cert-manager renewing a certificate): a new file renamed over the
// old one.
func ReplaceFile(t T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatalf("natsauth: write %s: %v", path, err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatalf("natsauth: replace %s: %v", path, err)
	}
}

// ClientNamed is s's view of its client connection called name (its client
// ID, TLS peer certificate, authorised user), or nil when there is none.
func ClientNamed(s *server.Server, name string) *server.ConnInfo {
	if s == nil {
		return nil
	}
	connz, err := s.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		return nil
	}
	for _, c := range connz.Conns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// PeerSubject is the subject of the certificate the client presented ("" for
// none).
func PeerSubject(c *server.ConnInfo) string {
	if c == nil || len(c.TLSPeerCerts) == 0 {
		return ""
	}
	return c.TLSPeerCerts[0].Subject
}

// StartJetStreamOn starts a JetStream server with mod applied on
// 127.0.0.1:port (where a previous server ran: clients reconnect to it),
// retrying while the old listener lingers, and shuts it down when the test
// ends.
func StartJetStreamOn(t testing.TB, port int, mod func(*server.Options)) *eventstest.Server {
	t.Helper()
	var lastErr error
	for range 50 {
		s, err := eventstest.StartJetStream(t.TempDir(), eventstest.WithServerOptions(func(o *server.Options) {
			mod(o)
			o.Port = port
		}))
		if err == nil {
			t.Cleanup(s.Shutdown)
			return s
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("natsauth: start a server on port %d: %v", port, lastErr)
	return nil
}
