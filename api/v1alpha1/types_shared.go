package v1alpha1

import (
	"time"
)

// Duration is a Go duration string such as "168h", "90m" or "1m30s". Days
// are not a unit: "7d" is refused at admission with a message saying so,
// rather than accepted and failed later.
// +kubebuilder:validation:Type=string
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^(0|([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+)$')",message="must be a duration such as 168h, 90m, 30s or 1m30s (units h, m, s, ms, us, ns; days are not supported)"
type Duration string

// Get returns the duration. Admission has validated the format; a value that
// still does not parse is returned as an error.
func (d Duration) Get() (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	return time.ParseDuration(string(d))
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ConnectionSpec points a resource at a NATS server other than the operator's
// default one. URL and credentials come together from one Secret in the
// resource's own namespace, so the operator never sends its own credentials
// to a URL a tenant chose.
type ConnectionSpec struct {
	// SecretRef names the Secret. Keys: "url" (required; nats://host:port,
	// comma-separated for a cluster), and optionally "creds" (a credentials
	// file's content), "nkey" (an nkey seed), "user" and "password", "token",
	// "ca.crt" (CA of the server's certificate), "tls.crt" and "tls.key"
	// (client certificate), "domain" (the JetStream domain to use on that
	// server, e.g. a leaf node's, when the resource's spec.domain is empty).
	SecretRef LocalObjectReference `json:"secretRef"`
}
