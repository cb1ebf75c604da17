package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/eventstest/natsauth"
)

// The tests below run Connect against embedded servers configured for each
// authentication mechanism and for TLS. For every mechanism: the right
// credentials connect and can use JetStream; wrong ones fail at once (Connect
// does not retry the first connection) with ErrConnection, and the error text
// holds no secret.

// cxServer starts a JetStream server with mod applied to its options.
func cxServer(t *testing.T, mod func(*server.Options)) *eventstest.Server {
	t.Helper()
	return eventstest.RunJetStream(t, eventstest.WithServerOptions(mod))
}

var cxStreamSeq atomic.Int32

// cxConnect connects and closes the connection when the test ends.
func cxConnect(t *testing.T, url string, opts ...events.ConnectOption) *nats.Conn {
	t.Helper()
	nc, err := events.Connect(url, append([]events.ConnectOption{events.WithName("connect-test")}, opts...)...)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// cxExpectJetStream checks that the connection is authorised to use JetStream:
// account info, and creating a stream.
func cxExpectJetStream(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream account info: %v", err)
	}
	name := fmt.Sprintf("CONNECT_TEST_%d", cxStreamSeq.Add(1))
	cfg := events.NewStreamConfig(name, strings.ToLower(name)+".>")
	cfg.Storage = jetstream.MemoryStorage
	cfg.MaxBytes = 1 << 20
	if _, err := events.CreateStream(ctx, js, cfg); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
}

// cxExpectRefused checks that Connect fails at once with ErrConnection and
// that its error text holds none of the secrets.
func cxExpectRefused(t *testing.T, url string, secrets []string, opts ...events.ConnectOption) error {
	t.Helper()
	start := time.Now()
	nc, err := events.Connect(url, opts...)
	elapsed := time.Since(start)
	if err == nil {
		nc.Close()
		t.Fatal("Connect succeeded with wrong credentials")
	}
	if !errors.Is(err, events.ErrConnection) {
		t.Fatalf("Connect = %v, want ErrConnection", err)
	}
	var opErr *events.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Connect = %T, want *events.OpError", err)
	}
	// No RetryOnFailedConnect: a refused connection is reported right away,
	// not after reconnect attempts (the client's dial timeout is 2s).
	if elapsed > 5*time.Second {
		t.Fatalf("Connect took %s to fail; the first connection must not be retried", elapsed)
	}
	cxExpectNoSecret(t, err, secrets...)
	return err
}

func cxExpectNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	msg := err.Error()
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			t.Fatalf("error text %q contains a secret", msg)
		}
	}
	if strings.Contains(msg, "PRIVATE KEY") {
		t.Fatalf("error text %q contains a private key", msg)
	}
}

func cxExpectValidation(t *testing.T, err error, field string, secrets ...string) {
	t.Helper()
	var verr *events.ValidationError
	if !errors.Is(err, events.ErrValidation) || !errors.As(err, &verr) {
		t.Fatalf("error = %v, want a *ValidationError", err)
	}
	if !strings.HasPrefix(verr.Field, field) {
		t.Fatalf("ValidationError names %q, want %q", verr.Field, field)
	}
	cxExpectNoSecret(t, err, secrets...)
}

// withURLUser puts user information into a nats:// URL.
func withURLUser(url, userinfo string) string {
	return strings.Replace(url, "nats://", "nats://"+userinfo+"@", 1)
}

func TestConnectUserPassword(t *testing.T) {
	const user, password, wrong = "alice", "alice-S3cret-pw", "mallory-Guess-pw"
	srv := cxServer(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: user, Password: password}}
	})

	t.Run("right password", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithUserPassword(user, password)))
	})
	t.Run("password in the URL", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, withURLUser(srv.URL(), user+":"+password)))
	})
	t.Run("wrong password", func(t *testing.T) {
		err := cxExpectRefused(t, srv.URL(), []string{password, wrong}, events.WithUserPassword(user, wrong))
		t.Logf("refused: %v", err)
	})
	t.Run("wrong password in the URL is redacted", func(t *testing.T) {
		err := cxExpectRefused(t, withURLUser(srv.URL(), user+":"+wrong), []string{password, wrong})
		if !strings.Contains(err.Error(), "redacted") {
			t.Errorf("error %q does not show the redacted URL", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		_ = cxExpectRefused(t, srv.URL(), []string{password})
	})
}

func TestConnectToken(t *testing.T) {
	const token, wrong = "tok-3f9a7c1e-right", "tok-00000000-wrong"
	srv := cxServer(t, func(o *server.Options) { o.Authorization = token })

	t.Run("right token", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithToken(token)))
	})
	t.Run("token in the URL", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, withURLUser(srv.URL(), token)))
	})
	t.Run("wrong token", func(t *testing.T) {
		_ = cxExpectRefused(t, srv.URL(), []string{token, wrong}, events.WithToken(wrong))
	})
	t.Run("wrong token in the URL is redacted", func(t *testing.T) {
		_ = cxExpectRefused(t, withURLUser(srv.URL(), wrong), []string{token, wrong})
	})
}

func TestConnectNKey(t *testing.T) {
	key := natsauth.NewNKey(t)
	other := natsauth.NewNKey(t)
	srv := cxServer(t, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: key.Pub}}
	})
	secrets := []string{string(key.Seed), string(other.Seed)}

	t.Run("seed in memory", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithNKeySeed(key.Seed)))
	})
	t.Run("seed with surrounding whitespace, as in a Secret", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithNKeySeed([]byte("\n"+string(key.Seed)+"\n"))))
	})
	t.Run("seed file", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithNKeyFile(key.WriteSeed(t, ""))))
	})
	t.Run("another user's seed", func(t *testing.T) {
		_ = cxExpectRefused(t, srv.URL(), secrets, events.WithNKeySeed(other.Seed))
	})
	t.Run("another user's seed file", func(t *testing.T) {
		_ = cxExpectRefused(t, srv.URL(), secrets, events.WithNKeyFile(other.WriteSeed(t, "")))
	})
	t.Run("not a seed", func(t *testing.T) {
		// A seed with one character in the middle changed (the checksum no
		// longer matches): refused, and not echoed.
		bad := []byte(string(key.Seed))
		if bad[20] == 'A' {
			bad[20] = 'B'
		} else {
			bad[20] = 'A'
		}
		_, err := events.Connect(srv.URL(), events.WithNKeySeed(bad))
		cxExpectValidation(t, err, "nkey", append(secrets, string(bad))...)
	})
	t.Run("seed file that does not exist", func(t *testing.T) {
		_, err := events.Connect(srv.URL(), events.WithNKeyFile(t.TempDir()+"/missing.nk"))
		cxExpectValidation(t, err, "nkeyFile")
	})
}

func TestConnectJWTCredentials(t *testing.T) {
	op := natsauth.NewOperator(t)
	acc := op.NewAccount(t, "TENANT", true)
	user := acc.NewUser(t, "svc")
	intruder := natsauth.UntrustedUser(t)
	srv := cxServer(t, op.ServerOptions)
	secrets := []string{string(user.Seed), string(intruder.Seed)}

	t.Run("creds file", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithCredsFile(user.WriteCreds(t, ""))))
	})
	t.Run("creds content", func(t *testing.T) {
		cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithCredentials(user.Creds)))
	})
	t.Run("creds of an account the server does not trust", func(t *testing.T) {
		_ = cxExpectRefused(t, srv.URL(), append(secrets, intruder.JWT), events.WithCredentials(intruder.Creds))
		_ = cxExpectRefused(t, srv.URL(), append(secrets, intruder.JWT), events.WithCredsFile(intruder.WriteCreds(t, "")))
	})
	t.Run("no credentials", func(t *testing.T) {
		_ = cxExpectRefused(t, srv.URL(), secrets)
	})
	t.Run("content that is not a creds file", func(t *testing.T) {
		_, err := events.Connect(srv.URL(), events.WithCredentials([]byte("not a creds file "+string(user.Seed[:10]))))
		cxExpectValidation(t, err, "creds", string(user.Seed[:10]))
	})
	t.Run("a JWT without its seed", func(t *testing.T) {
		jwtOnly := []byte(strings.SplitAfter(string(user.Creds), "------END NATS USER JWT------")[0] + "\n")
		_, err := events.Connect(srv.URL(), events.WithCredentials(jwtOnly))
		cxExpectValidation(t, err, "creds", user.JWT)
	})
	t.Run("creds file that does not exist", func(t *testing.T) {
		_, err := events.Connect(srv.URL(), events.WithCredsFile(t.TempDir()+"/missing.creds"))
		cxExpectValidation(t, err, "credsFile")
	})
}

func TestConnectTLS(t *testing.T) {
	pki := natsauth.NewPKI(t)
	otherCA := natsauth.NewPKI(t) // a CA the server's certificate is not signed by
	keys := []string{string(pki.ClientKeyPEM), string(pki.ServerKeyPEM), string(otherCA.ClientKeyPEM)}

	t.Run("server TLS", func(t *testing.T) {
		srv := cxServer(t, pki.ServerOptions(t, false))
		t.Run("CA file", func(t *testing.T) {
			nc := cxConnect(t, srv.URL(), events.WithTLS(pki.CAFile, "", ""))
			if _, err := nc.TLSConnectionState(); err != nil {
				t.Fatalf("connection is not TLS: %v", err)
			}
			cxExpectJetStream(t, nc)
		})
		t.Run("CA PEM", func(t *testing.T) {
			cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithTLSPEM(pki.CAPEM, nil, nil)))
		})
		t.Run("tls:// URL", func(t *testing.T) {
			url := strings.Replace(srv.URL(), "nats://", "tls://", 1)
			cxExpectJetStream(t, cxConnect(t, url, events.WithTLS(pki.CAFile, "", "")))
		})
		t.Run("wrong CA file", func(t *testing.T) {
			err := cxExpectRefused(t, srv.URL(), keys, events.WithTLS(otherCA.CAFile, "", ""))
			t.Logf("refused: %v", err)
		})
		t.Run("wrong CA PEM", func(t *testing.T) {
			_ = cxExpectRefused(t, srv.URL(), keys, events.WithTLSPEM(otherCA.CAPEM, nil, nil))
		})
		t.Run("system roots do not trust the test CA", func(t *testing.T) {
			_ = cxExpectRefused(t, srv.URL(), keys)
		})
	})

	t.Run("mutual TLS", func(t *testing.T) {
		srv := cxServer(t, pki.ServerOptions(t, true))
		t.Run("client certificate files", func(t *testing.T) {
			cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithTLS(pki.CAFile, pki.ClientCertFile, pki.ClientKeyFile)))
		})
		t.Run("client certificate PEM", func(t *testing.T) {
			cxExpectJetStream(t, cxConnect(t, srv.URL(), events.WithTLSPEM(pki.CAPEM, pki.ClientCertPEM, pki.ClientKeyPEM)))
		})
		t.Run("no client certificate", func(t *testing.T) {
			_ = cxExpectRefused(t, srv.URL(), keys, events.WithTLS(pki.CAFile, "", ""))
		})
		t.Run("client certificate from another CA", func(t *testing.T) {
			_ = cxExpectRefused(t, srv.URL(), keys, events.WithTLSPEM(pki.CAPEM, otherCA.ClientCertPEM, otherCA.ClientKeyPEM))
		})
		t.Run("wrong CA", func(t *testing.T) {
			_ = cxExpectRefused(t, srv.URL(), keys, events.WithTLS(otherCA.CAFile, pki.ClientCertFile, pki.ClientKeyFile))
		})
	})

	t.Run("bad TLS options are validation errors", func(t *testing.T) {
		srv := cxServer(t, pki.ServerOptions(t, true))
		_, err := events.Connect(srv.URL(), events.WithTLS(pki.CAFile, pki.ClientCertFile, ""))
		cxExpectValidation(t, err, "tls")
		_, err = events.Connect(srv.URL(), events.WithTLSPEM(pki.CAPEM, pki.ClientCertPEM, nil))
		cxExpectValidation(t, err, "tls")
		_, err = events.Connect(srv.URL(), events.WithTLSPEM([]byte("not PEM"), nil, nil))
		cxExpectValidation(t, err, "tls.ca")
		_, err = events.Connect(srv.URL(), events.WithTLS(pki.Dir+"/missing.crt", "", ""))
		cxExpectValidation(t, err, "tls.ca")
		// A certificate with someone else's key: refused before dialling,
		// without quoting the key.
		_, err = events.Connect(srv.URL(), events.WithTLSPEM(pki.CAPEM, pki.ClientCertPEM, otherCA.ClientKeyPEM))
		cxExpectValidation(t, err, "tls.cert", keys...)
		_, err = events.Connect(srv.URL(), events.WithTLS(pki.CAFile, pki.ClientCertFile, otherCA.ClientKeyFile))
		cxExpectValidation(t, err, "tls.cert", keys...)
	})
}

// Production combines them: TLS to the server and JWT credentials.
func TestConnectTLSWithJWTCredentials(t *testing.T) {
	pki := natsauth.NewPKI(t)
	op := natsauth.NewOperator(t)
	user := op.NewAccount(t, "TENANT", true).NewUser(t, "svc")
	tlsOpts := pki.ServerOptions(t, true)
	srv := cxServer(t, func(o *server.Options) {
		tlsOpts(o)
		op.ServerOptions(o)
	})
	cxExpectJetStream(t, cxConnect(t, srv.URL(),
		events.WithTLSPEM(pki.CAPEM, pki.ClientCertPEM, pki.ClientKeyPEM), events.WithCredentials(user.Creds)))
	_ = cxExpectRefused(t, srv.URL(), []string{string(user.Seed)},
		events.WithTLSPEM(pki.CAPEM, pki.ClientCertPEM, pki.ClientKeyPEM), events.WithCredentials(natsauth.UntrustedUser(t).Creds))
	_ = cxExpectRefused(t, srv.URL(), []string{string(user.Seed), string(pki.ClientKeyPEM)},
		events.WithTLSPEM(pki.CAPEM, nil, nil), events.WithCredentials(user.Creds))
}
