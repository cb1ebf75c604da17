// Package events is the client library services use to publish and consume
// CloudEvents-style events on NATS JetStream, and the one place where the
// project's stream defaults and the translation to JetStream's configuration
// live: the eventstream-operator calls CreateStream, UpdateStream and friends
// from here rather than talking to JetStream itself.
//
// The package never imports Kubernetes packages; a service that imports it
// pulls in nats.go and little else.
package events
