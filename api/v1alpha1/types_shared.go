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
