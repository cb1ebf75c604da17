package controller

import (
	"fmt"
	"slices"
	"strings"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// ownershipError refuses to manage a JetStream object that is not the
// resource's to manage. It is terminal: only a change to the resource, to the
// object's markers or to the operator's flags can resolve it.
type ownershipError struct {
	reason string // eventsv1.ReasonConflict or eventsv1.ReasonAdoptionNotAllowed
	msg    string
}

func (e *ownershipError) Error() string { return e.msg }

// claimant is the resource that wants to manage a JetStream object.
type claimant struct {
	kind      string // "EventStream", "EventConsumer"
	marker    string // "<namespace>/<name>", the value of the owner marker
	namespace string
	// adoptRequested: the resource carries events.giia.io/adopt: "true".
	adoptRequested bool
}

func newClaimant(kind, namespace, name string, annotations map[string]string) claimant {
	return claimant{kind: kind, marker: namespace + "/" + name, namespace: namespace,
		adoptRequested: annotations[eventsv1.AdoptAnnotation] == "true"}
}

// adoptPolicy says in which namespaces resources may adopt JetStream objects
// that no resource manages (--adopt-namespaces). "*" allows every namespace.
type adoptPolicy []string

func (p adoptPolicy) allows(namespace string) bool {
	return slices.Contains(p, "*") || slices.Contains(p, namespace)
}

func (p adoptPolicy) String() string {
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ",")
}

// claim decides whether c may manage the JetStream object what (e.g. `stream
// ORDERS`) whose metadata is md, and whether doing so adopts it:
//
//   - marked as owned by c: c manages it;
//   - marked as owned by any other resource: refused (Conflict), whatever c asks;
//   - released (deletionPolicy Retain) by c's own namespace and name: c takes
//     it back, no annotation needed;
//   - released by any other resource, of this namespace or another: refused
//     (Conflict), so no tenant can take over what another let go;
//   - unmarked (made by hand, by scripts, or by an operator version that
//     did not mark): adopted only when c asks for it with the adopt
//     annotation and its namespace is allowed; refused otherwise
//     (AdoptionNotAllowed).
//
// A refused object is never changed or deleted.
func (p adoptPolicy) claim(c claimant, what string, md map[string]string) (adopting bool, err error) {
	owner, released := md[eventsv1.OwnerMetadataKey], md[eventsv1.ReleasedByMetadataKey]
	switch {
	case owner == c.marker:
		return false, nil
	case owner != "":
		return false, &ownershipError{reason: eventsv1.ReasonConflict, msg: fmt.Sprintf(
			"%s is owned by %s; this %s will not change or delete it", what, owner, c.kind)}
	case released == c.marker:
		return true, nil
	case released != "":
		return false, &ownershipError{reason: eventsv1.ReasonConflict, msg: fmt.Sprintf(
			"%s was released by %s (deletionPolicy Retain) and only a resource of that namespace and name can take it back; "+
				"this %s will not change or delete it (to hand it over, remove the %s metadata from the JetStream object)",
			what, released, c.kind, eventsv1.ReleasedByMetadataKey)}
	case !c.adoptRequested:
		return false, &ownershipError{reason: eventsv1.ReasonAdoptionNotAllowed, msg: fmt.Sprintf(
			"%s exists in JetStream and no resource manages it; it is left untouched. To adopt it, annotate this %s with %s: \"true\" "+
				"(adoption is allowed in namespaces listed in the operator's --adopt-namespaces: %s)",
			what, c.kind, eventsv1.AdoptAnnotation, p)}
	case !p.allows(c.namespace):
		return false, &ownershipError{reason: eventsv1.ReasonAdoptionNotAllowed, msg: fmt.Sprintf(
			"%s exists in JetStream and no resource manages it; it is left untouched: adoption is not allowed in namespace %s "+
				"(the operator's --adopt-namespaces: %s; an administrator can add the namespace)",
			what, c.namespace, p)}
	}
	return true, nil
}

// releaseMarker is the metadata a resource with deletionPolicy Retain leaves
// on the object it releases.
func releaseMarker(marker string) map[string]string {
	return map[string]string{eventsv1.ReleasedByMetadataKey: marker}
}
