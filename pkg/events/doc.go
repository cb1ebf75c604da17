// Package events is the client library services use to publish and consume
// CloudEvents on NATS JetStream: connect (Connect), build an event (NewEvent),
// publish it with retries and deduplication (NewPublisher, Publish,
// PublishAsync), consume it from a durable pull consumer with backoff and
// dead-lettering (SubscribeDurable, Handler, Permanent), and declare the
// streams a service needs (CreateStream, UpdateStream, DeleteStream,
// GetStreamInfo, DefaultStreams, CreateDefaultStreams). Services depend on
// the EventPublisher interface, so that tests can use eventstest.Recorder.
//
// Event data can be checked against JSON Schemas on both ends: a
// DataValidator (the registry client of package events/schemas, which
// watches the schema bucket the operator fills from EventSchema
// resources) is given to the publisher with WithDataValidator and to a
// subscription in SubscriberConfig, which also declares the schema major
// versions it accepts (AcceptMajors); Versioned reads several majors into
// one struct. The strategy is docs/versioning.md.
//
// Replay republishes a range of a stream, or redrives a dead-letter
// stream back to the original subjects, exactly once and resumably: the
// copies carry the replay's ID, and a restarted replay reads them back
// from the target instead of trusting a checkpoint (docs/replay.md).
//
// Publishing and handling are traced and measured with the OpenTelemetry
// API (WithTracerProvider, WithMeterProvider, SubscriberConfig's
// TracerProvider and MeterProvider; otel's global providers by default):
// the event carries the producer span's W3C trace context as the
// CloudEvents distributed-tracing extension, and each delivery's consumer
// span is its child (README.md, "Telemetry").
//
// The package is its own Go module and imports no Kubernetes package and no
// OpenTelemetry SDK: a service that requires it gets nats.go, the
// OpenTelemetry API and little else in its build list.
// The house stream defaults and the translation to JetStream's configuration
// live here, and the eventstream-operator uses them too. What only the
// operator (or another stream administrator) needs — comparing declared
// streams and consumers with the server's, declared consumers, metadata edits
// — is in the subpackage events/admin, out of a service author's way.
package events
