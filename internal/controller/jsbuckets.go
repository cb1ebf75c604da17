package controller

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// The jsTypes of buckets. A bucket is a stream (KV_<bucket>, OBJ_<bucket>):
// read in one request, its metadata edited like a stream's, and its changes
// announced by the stream advisories (so an update is an own write to
// expect, like a stream's).

// keyValueType is the jsType of KeyValue buckets.
type keyValueType struct{}

func (keyValueType) name() string { return "keyvalue" }
func (keyValueType) get(ctx context.Context, js jetstream.JetStream, id jsID) (*jetstream.StreamInfo, error) {
	return admin.GetKeyValueInfo(ctx, js, id.bucket)
}
func (keyValueType) create(ctx context.Context, js jetstream.JetStream, _ jsID, desired admin.KeyValueConfig) (*jetstream.StreamInfo, error) {
	return admin.CreateKeyValue(ctx, js, desired)
}
func (keyValueType) update(ctx context.Context, js jetstream.JetStream, _ jsID, desired admin.KeyValueConfig) (*jetstream.StreamInfo, error) {
	return admin.UpdateKeyValue(ctx, js, desired)
}
func (keyValueType) delete(ctx context.Context, js jetstream.JetStream, id jsID) error {
	return admin.DeleteKeyValue(ctx, js, id.bucket)
}
func (keyValueType) setMetadata(ctx context.Context, js jetstream.JetStream, id jsID, set map[string]string, remove ...string) error {
	return admin.UpdateStreamMetadata(ctx, js, id.stream, set, remove...)
}
func (keyValueType) metadata(info *jetstream.StreamInfo) map[string]string {
	return info.Config.Metadata
}
func (keyValueType) diff(desired admin.KeyValueConfig, info *jetstream.StreamInfo) []string {
	return admin.DiffKeyValue(desired, info.Config)
}
func (keyValueType) checkUpdate(desired admin.KeyValueConfig, info *jetstream.StreamInfo) error {
	return admin.CheckKeyValueUpdate(desired, info.Config)
}
func (keyValueType) updateAdvised() bool { return true }

// objectStoreType is the jsType of ObjectStore buckets.
type objectStoreType struct{}

func (objectStoreType) name() string { return "objectstore" }
func (objectStoreType) get(ctx context.Context, js jetstream.JetStream, id jsID) (*jetstream.StreamInfo, error) {
	return admin.GetObjectStoreInfo(ctx, js, id.bucket)
}
func (objectStoreType) create(ctx context.Context, js jetstream.JetStream, _ jsID, desired admin.ObjectStoreConfig) (*jetstream.StreamInfo, error) {
	return admin.CreateObjectStore(ctx, js, desired)
}
func (objectStoreType) update(ctx context.Context, js jetstream.JetStream, _ jsID, desired admin.ObjectStoreConfig) (*jetstream.StreamInfo, error) {
	return admin.UpdateObjectStore(ctx, js, desired)
}
func (objectStoreType) delete(ctx context.Context, js jetstream.JetStream, id jsID) error {
	return admin.DeleteObjectStore(ctx, js, id.bucket)
}
func (objectStoreType) setMetadata(ctx context.Context, js jetstream.JetStream, id jsID, set map[string]string, remove ...string) error {
	return admin.UpdateStreamMetadata(ctx, js, id.stream, set, remove...)
}
func (objectStoreType) metadata(info *jetstream.StreamInfo) map[string]string {
	return info.Config.Metadata
}
func (objectStoreType) diff(desired admin.ObjectStoreConfig, info *jetstream.StreamInfo) []string {
	return admin.DiffObjectStore(desired, info.Config)
}
func (objectStoreType) checkUpdate(desired admin.ObjectStoreConfig, info *jetstream.StreamInfo) error {
	return admin.CheckObjectStoreUpdate(desired, info.Config)
}
func (objectStoreType) updateAdvised() bool { return true }

var (
	_ jsType[admin.KeyValueConfig, *jetstream.StreamInfo]    = keyValueType{}
	_ jsType[admin.ObjectStoreConfig, *jetstream.StreamInfo] = objectStoreType{}
)

// keyValueID and objectStoreID name a bucket's stream.
func keyValueID(bucket string) jsID {
	return jsID{stream: admin.KeyValueStreamPrefix + bucket, bucket: bucket, bucketKind: "KeyValue bucket"}
}

func objectStoreID(bucket string) jsID {
	return jsID{stream: admin.ObjectStoreStreamPrefix + bucket, bucket: bucket, bucketKind: "ObjectStore bucket"}
}
