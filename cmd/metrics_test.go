package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for name and its key into dir.
func writeCert(t *testing.T, dir, certFile, keyFile, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsOptions(t *testing.T) {
	base := options{metricsAddr: ":8443", metricsCertName: "tls.crt", metricsCertKey: "tls.key"}

	t.Run("secure: HTTPS behind authentication and authorization", func(t *testing.T) {
		o := base
		o.secureMetrics = true
		opts, cw, err := metricsOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		if !opts.SecureServing || opts.FilterProvider == nil || cw != nil {
			t.Errorf("SecureServing %t, FilterProvider set %t, cert watcher %v: want HTTPS with the authn/authz filter, self-signed",
				opts.SecureServing, opts.FilterProvider != nil, cw)
		}
	})

	t.Run("insecure: plain HTTP, no filter", func(t *testing.T) {
		opts, _, err := metricsOptions(base)
		if err != nil {
			t.Fatal(err)
		}
		if opts.SecureServing || opts.FilterProvider != nil {
			t.Errorf("--metrics-secure=false: SecureServing %t, filter %t", opts.SecureServing, opts.FilterProvider != nil)
		}
		o := base
		o.metricsCertPath = t.TempDir()
		if _, _, err := metricsOptions(o); err == nil || !strings.Contains(err.Error(), "--metrics-cert-path") {
			t.Errorf("a certificate without --metrics-secure: want an error naming --metrics-cert-path, got %v", err)
		}
	})

	t.Run("a mounted certificate is served", func(t *testing.T) {
		dir := t.TempDir()
		writeCert(t, dir, "cert.pem", "key.pem", "metrics.example")
		o := base
		o.secureMetrics, o.metricsCertPath, o.metricsCertName, o.metricsCertKey = true, dir, "cert.pem", "key.pem"
		opts, cw, err := metricsOptions(o)
		if err != nil {
			t.Fatal(err)
		}
		if cw == nil {
			t.Fatal("no certificate watcher for --metrics-cert-path")
		}
		cfg := &tls.Config{}
		for _, f := range opts.TLSOpts {
			f(cfg)
		}
		if cfg.GetCertificate == nil {
			t.Fatal("TLSOpts do not set GetCertificate")
		}
		cert, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil || leaf.Subject.CommonName != "metrics.example" {
			t.Errorf("served certificate %v (%v), want the one in %s", leaf.Subject, err, dir)
		}
		if cfg.NextProtos[0] != "http/1.1" || len(cfg.NextProtos) != 1 {
			t.Errorf("NextProtos %v: HTTP/2 must stay off", cfg.NextProtos)
		}

		o.metricsCertName = "missing.pem"
		if _, _, err := metricsOptions(o); err == nil || !strings.Contains(err.Error(), "--metrics-cert-path") {
			t.Errorf("a missing certificate file: want an error naming the flags, got %v", err)
		}
	})
}

// The flags are defined once each (a duplicate panics at start) and their
// defaults are the documented ones.
func TestFlagDefaults(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "eventstream-system")
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var o options
	bindFlags(fs, &o)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.allowResourceConns || o.resourceConnURLs != "" {
		t.Errorf("per-resource connections on by default: %v %q", o.allowResourceConns, o.resourceConnURLs)
	}
	if o.metricsAddr != ":8443" || !o.secureMetrics {
		t.Errorf("metrics %q secure=%v, want :8443 secure", o.metricsAddr, o.secureMetrics)
	}
	if o.jetStreamDomains != "" {
		t.Errorf("--jetstream-domains defaults to %q, want none allowed", o.jetStreamDomains)
	}
	if o.adoptNamespaces != "eventstream-system" {
		t.Errorf("--adopt-namespaces defaults to %q, want the operator's namespace", o.adoptNamespaces)
	}
	if o.maxConcurrentReconciles != 8 || o.resyncInterval != time.Minute {
		t.Errorf("workers %d, resync %s", o.maxConcurrentReconciles, o.resyncInterval)
	}
}

// A --jetstream-domains entry that is no domain name stops the manager at
// once, naming the flag (before any connection is made).
func TestJetStreamDomainsFlagIsChecked(t *testing.T) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var o options
	bindFlags(fs, &o)
	if err := fs.Parse([]string{"--jetstream-domains=leaf,edge.1"}); err != nil {
		t.Fatal(err)
	}
	err := run(o)
	if err == nil || !strings.Contains(err.Error(), "--jetstream-domains") || !strings.Contains(err.Error(), `"edge.1"`) {
		t.Fatalf("run = %v, want an error naming --jetstream-domains and \"edge.1\"", err)
	}
}
