package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplayPhase is where a replay stands.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type ReplayPhase string

const (
	// ReplayPending: not started yet (waiting for its EventStream or its
	// connection).
	ReplayPending ReplayPhase = "Pending"
	// ReplayRunning: messages are being republished.
	ReplayRunning ReplayPhase = "Running"
	// ReplaySucceeded: every message of the range was republished (or
	// skipped); the replay does nothing more.
	ReplaySucceeded ReplayPhase = "Succeeded"
	// ReplayFailed: the replay stopped on a failure only a new replay can
	// fix; the Stalled condition has the reason.
	ReplayFailed ReplayPhase = "Failed"
)

// ReplayPosition is one end of a replay's range: a stream sequence or a
// time, exactly one of them.
// +kubebuilder:validation:XValidation:rule="has(self.sequence) != has(self.time)",message="set exactly one of sequence or time"
type ReplayPosition struct {
	// Sequence is a stream sequence (inclusive).
	// +kubebuilder:validation:Minimum=1
	// +optional
	Sequence *int64 `json:"sequence,omitempty"`
	// Time is an RFC 3339 time (inclusive): the first message stored at or
	// after it (from), or the last stored at or before it (to).
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// ReplaySource is what is replayed: the messages of an EventStream's stream
// in a range, optionally only some subjects.
type ReplaySource struct {
	// StreamRef names an EventStream in the replay's namespace; the replay
	// reads its JetStream stream, on its server.
	StreamRef LocalObjectReference `json:"streamRef"`
	// FilterSubjects limits the replay to messages on these subjects
	// (wildcards allowed); empty replays every subject.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	FilterSubjects []string `json:"filterSubjects,omitempty"`
	// From is the first message of the range; absent starts at the
	// stream's first message.
	// +optional
	From *ReplayPosition `json:"from,omitempty"`
	// To is the last message of the range; absent ends at the stream's
	// last message when the replay starts (a replay does not follow new
	// messages).
	// +optional
	To *ReplayPosition `json:"to,omitempty"`
}

// ReplayTarget is where each message is republished: exactly one of
// subject, subjectPrefix or original.
// +kubebuilder:validation:XValidation:rule="(has(self.subject) ? 1 : 0) + (has(self.subjectPrefix) ? 1 : 0) + ((has(self.original) && self.original) ? 1 : 0) == 1",message="set exactly one of subject, subjectPrefix or original: true"
type ReplayTarget struct {
	// Subject sends every message to this one subject.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.contains('*') && !self.contains('>') && !self.contains(' ')",message="must be a subject without wildcards or spaces"
	Subject string `json:"subject,omitempty"`
	// SubjectPrefix is prepended to each message's original subject (e.g.
	// "replay." sends auth.user.created to replay.auth.user.created).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.endsWith('.') && !self.contains('*') && !self.contains('>') && !self.contains(' ')",message="must end with '.' and hold no wildcards or spaces, e.g. replay."
	SubjectPrefix string `json:"subjectPrefix,omitempty"`
	// Original sends each message back to its original subject; for a dead
	// letter (redrive) that is its Dlq-Original-Subject header.
	// +optional
	Original bool `json:"original,omitempty"`
	// Connection, when set, republishes to the NATS server named in a
	// Secret of this namespace (only where the operator allows per-resource
	// connections); absent, to the source stream's server.
	// +optional
	Connection *ConnectionSpec `json:"connection,omitempty"`
}

// ReplayRedrive turns a replay of a dead-letter stream into a redrive: each
// dead letter goes back to the subject in its Dlq-Original-Subject header,
// without the Dlq-* headers, keeping its CloudEvents (ce-*) headers.
type ReplayRedrive struct {
	// DeleteRedriven deletes each dead letter from the dead-letter stream
	// once it is republished.
	// +optional
	DeleteRedriven bool `json:"deleteRedriven,omitempty"`
}

// EventReplaySpec declares one replay. It is immutable: a replay is an
// action, and its progress belongs to the spec it started with.
// +kubebuilder:validation:XValidation:rule="!has(self.redrive) || (has(self.target.original) && self.target.original)",message="redrive requires target.original: true (a dead letter goes back to its Dlq-Original-Subject)",fieldPath=".redrive"
type EventReplaySpec struct {
	// Source is the stream and range to replay.
	Source ReplaySource `json:"source"`
	// Target is where the messages are republished.
	Target ReplayTarget `json:"target"`
	// Redrive, when set, treats the source as a dead-letter stream (see
	// ReplayRedrive); it requires target.original.
	// +optional
	Redrive *ReplayRedrive `json:"redrive,omitempty"`
	// RateLimit caps the republished messages per second; absent is
	// unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RateLimit *int32 `json:"rateLimit,omitempty"`
	// BatchSize is how many messages are published before waiting for
	// their acks and checkpointing progress.
	// +optional
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	BatchSize int32 `json:"batchSize,omitempty"`
}

// EventReplayStatus is the replay's progress. Progress is durable in the
// target stream itself (each republished message carries the replay's ID
// and its source sequence); these numbers are a checkpoint of it.
type EventReplayStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready is True once the replay Succeeded; Reconciling is
	// True while it is Pending or Running, Stalled once it Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Phase is Pending, Running, Succeeded or Failed.
	// +optional
	Phase ReplayPhase `json:"phase,omitempty"`
	// StreamName is the source's JetStream stream.
	// +optional
	StreamName string `json:"streamName,omitempty"`
	// Total is the number of messages in the range when the replay started.
	// +optional
	Total int64 `json:"total,omitempty"`
	// Replayed is the number of messages republished.
	// +optional
	Replayed int64 `json:"replayed,omitempty"`
	// Skipped is the number of messages not republished (a dead letter
	// without Dlq-Original-Subject in a redrive).
	// +optional
	Skipped int64 `json:"skipped,omitempty"`
	// Target is where the messages go, for kubectl get: the subject,
	// "<prefix><subject>", "original" or "original (redrive)".
	// +optional
	Target string `json:"target,omitempty"`
	// Progress is "replayed/total", for kubectl get.
	// +optional
	Progress string `json:"progress,omitempty"`
	// LastSequence is the source sequence of the last message handled.
	// +optional
	LastSequence int64 `json:"lastSequence,omitempty"`
	// EndSequence is the last source sequence of a range without
	// source.to: the stream's last sequence when the replay first started,
	// kept so that a resumed replay ends where it would have.
	// +optional
	EndSequence int64 `json:"endSequence,omitempty"`
	// TargetSequence is the target stream's sequence of the last message
	// republished.
	// +optional
	TargetSequence int64 `json:"targetSequence,omitempty"`
	// StartTime is when the replay first started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when it Succeeded or Failed.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// EventReplay republishes a range of an EventStream's messages — or redrives
// a dead-letter stream — exactly once, resumably, with its progress in
// status. Delete it to cancel a running replay.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evr,categories=jetstream
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source.streamRef.name`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.target`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventReplay struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a replay keeps the spec it started with; delete it (which cancels it) and create a new EventReplay"
	Spec   EventReplaySpec   `json:"spec"`
	Status EventReplayStatus `json:"status,omitempty"`
}

// EventReplayList is a list of EventReplays.
// +kubebuilder:object:root=true
type EventReplayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventReplay `json:"items"`
}

// TargetDescription is how status.target (the Target column) shows
// spec.target.
func (r *EventReplay) TargetDescription() string {
	t := r.Spec.Target
	switch {
	case t.Subject != "":
		return t.Subject
	case t.SubjectPrefix != "":
		return t.SubjectPrefix + "<subject>"
	case r.Spec.Redrive != nil:
		return "original (redrive)"
	}
	return "original"
}
