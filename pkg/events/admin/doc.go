// Package admin holds the parts of the events library that only a stream
// administrator needs — the eventstream-operator, or a tool that manages
// JetStream objects declaratively — and that a service publishing and
// consuming events does not:
//
//   - comparing a declared stream or consumer with the server's (DiffStream,
//     DiffConsumer) and telling in advance whether JetStream can apply a
//     change in place (CheckStreamUpdate, CheckConsumerUpdate);
//   - declared durable consumers, pull or push (ConsumerConfig with every
//     JetStream consumer setting, CreateConsumer, UpdateConsumer — which
//     also pauses or resumes through JetStream's pause API —, DeleteConsumer,
//     GetConsumerInfo); a service binds to or creates its pull consumer with
//     events.SubscribeDurable instead;
//   - declared KeyValue and ObjectStore buckets (KeyValueConfig,
//     ObjectStoreConfig: Validate, Stream — the bucket's stream exactly as
//     nats.go builds it — CreateKeyValue, UpdateKeyValue, DiffKeyValue,
//     CheckKeyValueUpdate, GetKeyValueInfo, DeleteKeyValue and the same for
//     ObjectStores, CountObjects); a service opens a bucket with nats.go's
//     js.KeyValue or js.ObjectStore;
//   - editing only the metadata of a stream or consumer
//     (UpdateStreamMetadata, UpdateConsumerMetadata);
//   - RedactURL, for logging NATS URLs without their credentials.
//
// It uses the events package's types (events.StreamConfig, the typed
// errors: events.ErrNotFound, *events.ImmutableFieldError, ...), so errors
// match the same sentinels with errors.Is.
package admin
