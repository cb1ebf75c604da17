package natsconn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/giia/eventstream-operator/internal/natsconn"
)

func TestHostPatternsAllowOnlyMatchingServers(t *testing.T) {
	patterns := []string{
		"nats.team-a.svc",         // port 4222 only
		"NATS.Example.COM:4443",   // case-insensitive, that port only
		"*.nats.example.org",      // one or more labels, port 4222
		"*.ws.example.org:443",    // wss without a port is 443
		"10.0.0.7:5222",           // an IP address, by its spelling only
		"[fd00::7]",               // IPv6 in brackets, port 4222
		"trailing.example.net.",   // a trailing dot is the same name
		"  spaced.example.net  ",  // surrounding blanks are trimmed
		"",                        // empty entries are skipped
		"under_score.example.net", // '_' appears in real service names
	}
	hp, err := natsconn.ParseHostPatterns(patterns)
	if err != nil {
		t.Fatal(err)
	}
	if !hp.Restricted() {
		t.Fatal("patterns given, but not restricted")
	}
	cases := []struct {
		name string
		urls string
		ok   bool
	}{
		{"exact host with the default port", "nats://nats.team-a.svc", true},
		{"exact host with port 4222 spelled out", "nats://nats.team-a.svc:4222", true},
		{"exact host without a scheme", "nats.team-a.svc:4222", true},
		{"exact host, tls scheme", "tls://nats.team-a.svc", true},
		{"exact host in upper case", "nats://NATS.Team-A.SVC", true},
		{"exact host with a trailing dot", "nats://nats.team-a.svc.", true},
		{"exact host with credentials in the URL", "nats://u:p@nats.team-a.svc", true},
		{"exact host on another port", "nats://nats.team-a.svc:4223", false},
		{"a subdomain of an exact host", "nats://x.nats.team-a.svc", false},
		{"a longer name ending like the host", "nats://evilnats.team-a.svc", false},
		{"pattern with a port, URL with that port", "nats://nats.example.com:4443", true},
		{"pattern with a port, URL with the default port", "nats://nats.example.com", false},
		{"wildcard, one label", "nats://a.nats.example.org", true},
		{"wildcard, two labels", "nats://a.b.nats.example.org:4222", true},
		{"wildcard does not match the domain itself", "nats://nats.example.org", false},
		{"wildcard does not match a longer name", "nats://xnats.example.org", false},
		{"wildcard on another port", "nats://a.nats.example.org:4223", false},
		{"wss without a port is 443", "wss://a.ws.example.org", true},
		{"ws without a port is 80", "ws://a.ws.example.org", false},
		{"IP address and port", "nats://10.0.0.7:5222", true},
		{"IP address on the default port", "nats://10.0.0.7", false},
		{"another IP address", "nats://10.0.0.8:5222", false},
		{"IPv6 in brackets", "nats://[fd00::7]:4222", true},
		{"IPv6 in upper case", "nats://[FD00::7]", true},
		{"IPv6 spelled out in full", "nats://[fd00:0:0:0:0:0:0:7]:4222", true},
		{"trailing-dot pattern", "nats://trailing.example.net", true},
		{"trimmed pattern", "nats://spaced.example.net", true},
		{"underscore", "nats://under_score.example.net", true},
		{"all URLs of a list allowed", "nats://nats.team-a.svc, nats://a.nats.example.org ,tls://10.0.0.7:5222", true},
		{"one URL of a list refused", "nats://nats.team-a.svc,nats://attacker.example", false},
		{"empty entries in a list are skipped", "nats://nats.team-a.svc,,", true},
		{"localhost is not special", "nats://localhost", false},
		{"loopback is not special", "nats://127.0.0.1:4222", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := hp.Check(tc.urls)
			if tc.ok && err != nil {
				t.Fatalf("Check(%q) = %v, want allowed", tc.urls, err)
			}
			if !tc.ok {
				var refused *natsconn.URLNotAllowedError
				if !errors.As(err, &refused) {
					t.Fatalf("Check(%q) = %v, want a *URLNotAllowedError", tc.urls, err)
				}
				if refused.Host == "" || !strings.Contains(err.Error(), refused.Host) {
					t.Fatalf("the error %q does not name the host", err)
				}
			}
		})
	}
}

func TestHostPatternsRefusedMessageNamesHostAndPatterns(t *testing.T) {
	hp, err := natsconn.ParseHostPatterns([]string{"*.nats.example.org", "nats.team-a.svc:4223"})
	if err != nil {
		t.Fatal(err)
	}
	err = hp.Check("nats://tenant:hunter2@Attacker.Example:4222")
	var refused *natsconn.URLNotAllowedError
	if !errors.As(err, &refused) {
		t.Fatalf("Check = %v, want a *URLNotAllowedError", err)
	}
	if refused.Host != "attacker.example:4222" {
		t.Fatalf("Host = %q, want attacker.example:4222", refused.Host)
	}
	for _, want := range []string{`"attacker.example:4222"`, "*.nats.example.org, nats.team-a.svc:4223"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "tenant") {
		t.Fatalf("the error quotes the URL's credentials: %q", err)
	}
}

// Garbage is refused with the reason, whether or not patterns restrict the
// hosts, and the reason never quotes the URL (it may hold a password).
func TestHostPatternsRefuseUnusableURLs(t *testing.T) {
	restricted, err := natsconn.ParseHostPatterns([]string{"*.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for _, hp := range []*natsconn.HostPatterns{nil, {}, restricted} {
		cases := []struct{ urls, reason string }{
			{"nats://u:hunter2@a.example.org:42x22", "invalid port"},
			{"http://u:hunter2@a.example.org", `scheme "http"`},
			{"nats://u:hunter2@:4222", "no host"},
			{"nats://u:hunter2@a..example.org", "not a hostname"},
			{"nats://u:hunter2@a.example.org/%zz", "not a URL"},
			{" , ,", "no server URL"},
		}
		for _, tc := range cases {
			err := hp.Check(tc.urls)
			var refused *natsconn.URLNotAllowedError
			if !errors.As(err, &refused) {
				t.Fatalf("%s: Check(%q) = %v, want a *URLNotAllowedError", hp, tc.urls, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("%s: Check(%q) = %q, want the reason %q", hp, tc.urls, err, tc.reason)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error quotes the URL: %q", err)
			}
		}
	}
}

func TestHostPatternsEmptyAllowsAnyHost(t *testing.T) {
	for _, list := range [][]string{nil, {}, {"", " "}} {
		hp, err := natsconn.ParseHostPatterns(list)
		if err != nil {
			t.Fatal(err)
		}
		if hp.Restricted() {
			t.Fatalf("%q restricts", list)
		}
		for _, u := range []string{"nats://anything.example:1234", "tls://10.1.2.3", "wss://x.y", "localhost"} {
			if err := hp.Check(u); err != nil {
				t.Fatalf("%q: Check(%q) = %v", list, u, err)
			}
		}
		if hp.String() != "any host" {
			t.Fatalf("String = %q", hp.String())
		}
	}
}

func TestHostPatternsBadPatternsAreErrorsNamingThePattern(t *testing.T) {
	cases := []struct{ pattern, reason string }{
		{"nats://nats.example.org", "not a URL"},
		{"nats.example.org/x", "not a URL"},
		{"user@nats.example.org", "not a URL"},
		{"nats.example.org:0", "port"},
		{"nats.example.org:65536", "port"},
		{"nats.example.org:http", "port"},
		{"nats.example.org:", "empty port"},
		{"a.*.example.org", `"*"`},
		{"*example.org", `"*"`},
		{"*", `"*"`},
		{"*.", `"*"`},
		{":4222", "no host"},
		{"*.10.0.0.1", "wildcard needs a domain"},
		{"fd00::7", "brackets"},
		{"[nats.example.org]", "IPv6"},
		{"a..example.org", "not a hostname"},
		{"bad host.example.org", "not a hostname"},
	}
	for _, tc := range cases {
		_, err := natsconn.ParseHostPatterns([]string{"ok.example.org", tc.pattern})
		if err == nil {
			t.Fatalf("ParseHostPatterns(%q) accepted it", tc.pattern)
		}
		if !strings.Contains(err.Error(), `"`+tc.pattern+`"`) || !strings.Contains(err.Error(), tc.reason) {
			t.Fatalf("ParseHostPatterns(%q) = %q, want the pattern quoted and %q", tc.pattern, err, tc.reason)
		}
	}
}
