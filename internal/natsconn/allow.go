package natsconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the port nats.go dials for a nats:// or tls:// URL without
// one, and the port a host pattern without a port stands for.
const DefaultPort = "4222"

// HostPatterns says which servers per-resource connections may name
// (--resource-connection-urls). A pattern is "host", "host:port",
// "*.domain" or "*.domain:port"; "*." matches one or more leading labels.
// A pattern without a port allows port 4222 only. Hostnames compare
// case-insensitively and are never resolved: an IP address matches only a
// pattern with the same address, and a wildcard matches names only. A nil or empty HostPatterns allows
// any host.
type HostPatterns struct {
	patterns []hostPattern
	text     []string // as given, for messages
}

type hostPattern struct {
	host     string // lower case, no brackets; for a wildcard the suffix ".domain"
	wildcard bool
	port     string
}

// ParseHostPatterns parses the patterns of --resource-connection-urls;
// empty entries are skipped. An error names the pattern and what is wrong
// with it.
func ParseHostPatterns(list []string) (*HostPatterns, error) {
	hp := &HostPatterns{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := parseHostPattern(s)
		if err != nil {
			return nil, fmt.Errorf("host pattern %q: %w", s, err)
		}
		hp.patterns = append(hp.patterns, p)
		hp.text = append(hp.text, s)
	}
	return hp, nil
}

func parseHostPattern(s string) (hostPattern, error) {
	if strings.Contains(s, "/") || strings.Contains(s, "@") {
		return hostPattern{}, errors.New("a pattern is host, host:port, *.domain or *.domain:port, not a URL")
	}
	host, port, err := splitHostPort(strings.ToLower(s))
	if err != nil {
		return hostPattern{}, err
	}
	if port == "" {
		port = DefaultPort
	}
	p := hostPattern{host: host, port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		p.wildcard, p.host = true, "."+rest
		host = rest
	}
	if host == "" {
		return hostPattern{}, errors.New("no host")
	}
	if strings.Contains(host, "*") {
		return hostPattern{}, errors.New(`"*" is allowed only as the first label ("*.example.com")`)
	}
	if p.wildcard && net.ParseIP(host) != nil {
		return hostPattern{}, errors.New("a wildcard needs a domain name, not an IP address")
	}
	if !validHostname(host) {
		return hostPattern{}, errors.New("not a hostname or IP address")
	}
	return p, nil
}

// splitHostPort splits "host", "host:port", "[v6]" and "[v6]:port"; the
// port, when present, must be a number from 1 to 65535.
func splitHostPort(s string) (host, port string, err error) {
	switch {
	case strings.HasPrefix(s, "["):
		if strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		} else if host, port, err = net.SplitHostPort(s); err != nil {
			return "", "", errors.New("an IPv6 address is written [address] or [address]:port")
		}
		if net.ParseIP(host) == nil {
			return "", "", errors.New("not an IPv6 address in brackets")
		}
	case strings.Count(s, ":") > 1:
		return "", "", errors.New("an IPv6 address needs brackets: [address] or [address]:port")
	case strings.Contains(s, ":"):
		host, port, _ = strings.Cut(s, ":")
		if port == "" {
			return "", "", errors.New("empty port")
		}
	default:
		host = s
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	return strings.TrimSuffix(host, "."), port, nil
}

// validHostname accepts an IP address, or dot-separated non-empty labels of
// letters, digits, '-' and '_'.
func validHostname(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return false
		}
		for _, r := range label {
			letter, digit := r >= 'a' && r <= 'z', r >= '0' && r <= '9'
			if !letter && !digit && r != '-' && r != '_' {
				return false
			}
		}
	}
	return true
}

// Restricted reports whether only some hosts are allowed.
func (hp *HostPatterns) Restricted() bool { return hp != nil && len(hp.patterns) > 0 }

// String lists the patterns as given.
func (hp *HostPatterns) String() string {
	if !hp.Restricted() {
		return "any host"
	}
	return strings.Join(hp.text, ", ")
}

// URLNotAllowedError says why a server URL may not be dialled. It never
// holds the URL itself (which may carry a password), only its host and port.
type URLNotAllowedError struct {
	// Host is "host:port" as it would be dialled; empty when the URL could
	// not be parsed.
	Host string
	// Reason says what is wrong.
	Reason string
}

func (e *URLNotAllowedError) Error() string {
	if e.Host == "" {
		return e.Reason
	}
	return fmt.Sprintf("host %q %s", e.Host, e.Reason)
}

// Check parses urls, a comma-separated list of server URLs as nats.go reads
// it (a URL without a scheme is nats://), and returns a *URLNotAllowedError
// for the first that is malformed, uses a scheme other than nats, tls, ws or
// wss, or (when restricted) matches no pattern. Nothing is resolved or
// dialled.
func (hp *HostPatterns) Check(urls string) error {
	n := 0
	for i, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		n++
		host, port, err := serverAddress(raw)
		if err != nil {
			return &URLNotAllowedError{Reason: fmt.Sprintf("server URL %d of the list is not usable: %v", i+1, err)}
		}
		if !hp.allows(host, port) {
			return &URLNotAllowedError{Host: net.JoinHostPort(host, port), Reason: "matches none of the allowed host patterns (" + hp.String() + ")"}
		}
	}
	if n == 0 {
		return &URLNotAllowedError{Reason: "the URL list holds no server URL"}
	}
	return nil
}

// serverAddress returns the lower-case host and the port nats.go would dial
// for one server URL.
func serverAddress(raw string) (host, port string, err error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error quotes the whole URL, password included
		}
		return "", "", fmt.Errorf("not a URL: %v", err)
	}
	defaultPort := DefaultPort
	switch strings.ToLower(u.Scheme) {
	case "nats", "tls":
	case "ws":
		defaultPort = "80"
	case "wss":
		defaultPort = "443"
	default:
		return "", "", fmt.Errorf("scheme %q is not one of nats, tls, ws, wss", u.Scheme)
	}
	host = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return "", "", errors.New("no host")
	}
	if !validHostname(host) {
		return "", "", fmt.Errorf("host %q is not a hostname or IP address", host)
	}
	port = u.Port()
	if port == "" {
		port = defaultPort
	}
	return host, port, nil
}

func (hp *HostPatterns) allows(host, port string) bool {
	if !hp.Restricted() {
		return true
	}
	ip := net.ParseIP(host)
	for _, p := range hp.patterns {
		switch {
		case p.port != port:
		case p.wildcard:
			if ip == nil && len(host) > len(p.host) && strings.HasSuffix(host, p.host) {
				return true
			}
		case ip != nil:
			if ip.Equal(net.ParseIP(p.host)) {
				return true
			}
		case host == p.host:
			return true
		}
	}
	return false
}
