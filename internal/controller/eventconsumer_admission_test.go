package controller_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// Admission of the push, pull, priority and pause settings of an
// EventConsumer: the combinations JetStream refuses, and the changes it
// cannot make in place, are refused by the API server with a message that
// names the field.
var _ = Describe("EventConsumer admission of delivery settings", func() {
	ctx := context.Background()
	manifest := func(spec map[string]any) *unstructured.Unstructured {
		spec["streamRef"] = map[string]any{"name": "some-stream"}
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": eventsv1.GroupVersion.String(), "kind": "EventConsumer",
			"metadata": map[string]any{"name": uniqueName("delivery"), "namespace": "default"},
			"spec":     spec,
		}}
	}
	push := func(extra map[string]any) map[string]any {
		spec := map[string]any{"deliverSubject": "deliver.here"}
		for k, v := range extra {
			spec[k] = v
		}
		return spec
	}

	DescribeTable("refuses, naming the field",
		func(spec map[string]any, field, message string) {
			err := k8s.Create(ctx, manifest(spec), client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("deliverGroup on a pull consumer", map[string]any{"deliverGroup": "workers"}, "spec.deliverGroup", "for push consumers: set deliverSubject"),
		Entry("flowControl on a pull consumer", map[string]any{"flowControl": true, "idleHeartbeat": "5s"}, "spec.flowControl", "for push consumers: set deliverSubject"),
		Entry("idleHeartbeat on a pull consumer", map[string]any{"idleHeartbeat": "5s"}, "spec.idleHeartbeat", "for push consumers: set deliverSubject"),
		Entry("rateLimitBps on a pull consumer", map[string]any{"rateLimitBps": 1000}, "spec.rateLimitBps", "for push consumers: set deliverSubject"),
		Entry("flowControl without idleHeartbeat", push(map[string]any{"flowControl": true}), "spec.flowControl", "needs idleHeartbeat"),
		Entry("maxWaiting on a push consumer", push(map[string]any{"maxWaiting": 10}), "spec.maxWaiting", "for pull consumers"),
		Entry("maxRequestBatch on a push consumer", push(map[string]any{"maxRequestBatch": 10}), "spec.maxRequestBatch", "for pull consumers"),
		Entry("maxRequestExpires on a push consumer", push(map[string]any{"maxRequestExpires": "10s"}), "spec.maxRequestExpires", "for pull consumers"),
		Entry("maxRequestMaxBytes on a push consumer", push(map[string]any{"maxRequestMaxBytes": 1024}), "spec.maxRequestMaxBytes", "for pull consumers"),
		Entry("priorityPolicy on a push consumer", push(map[string]any{"priorityPolicy": "Overflow", "priorityGroups": []any{"a"}}), "spec.priorityPolicy", "for pull consumers"),
		Entry("maxAckPending without acks on a push consumer", push(map[string]any{"ackPolicy": "None", "maxAckPending": 10}), "spec.maxAckPending", "needs acknowledgements"),
		Entry("a priority policy without groups", map[string]any{"priorityPolicy": "Pinned"}, "spec.priorityGroups", "required with, and only with"),
		Entry("priority groups without a policy", map[string]any{"priorityGroups": []any{"a"}}, "spec.priorityGroups", "required with, and only with"),
		Entry("pinnedTTL without Pinned", map[string]any{"priorityPolicy": "Overflow", "priorityGroups": []any{"a"}, "pinnedTTL": "1m"}, "spec.pinnedTTL", "only allowed with priorityPolicy Pinned"),
		Entry("a priority group name with a dot", map[string]any{"priorityPolicy": "Overflow", "priorityGroups": []any{"a.b"}}, "spec.priorityGroups[0]", "should match"),
		Entry("an unknown priority policy", map[string]any{"priorityPolicy": "Random", "priorityGroups": []any{"a"}}, "spec.priorityPolicy", "supported values"),
		Entry("an unknown replay policy", map[string]any{"replayPolicy": "Slow"}, "spec.replayPolicy", "supported values"),
		Entry("a sample frequency over 100", map[string]any{"sampleFrequency": "150%"}, "spec.sampleFrequency", "percentage from 1 to 100"),
		Entry("a wildcard deliver subject", map[string]any{"deliverSubject": "deliver.*"}, "spec.deliverSubject", "without wildcards"),
		Entry("a bad idle heartbeat", push(map[string]any{"idleHeartbeat": "often"}), "spec.idleHeartbeat", "must be a duration"),
		Entry("a bad deliver group", push(map[string]any{"deliverGroup": "a group"}), "spec.deliverGroup", "queue group name"),
	)

	DescribeTable("accepts",
		func(spec map[string]any) {
			Expect(k8s.Create(ctx, manifest(spec), client.DryRunAll)).To(Succeed())
		},
		Entry("a push consumer with every push setting", push(map[string]any{
			"deliverGroup": "workers", "flowControl": true, "idleHeartbeat": "5s", "rateLimitBps": 1 << 20,
			"headersOnly": true, "sampleFrequency": "50%", "replayPolicy": "Original", "pauseUntil": "2030-01-01T00:00:00Z",
		})),
		Entry("a pull consumer with every pull setting", map[string]any{
			"maxWaiting": 64, "maxRequestBatch": 10, "maxRequestExpires": "30s", "maxRequestMaxBytes": 1 << 20,
			"priorityPolicy": "Pinned", "priorityGroups": []any{"jobs", "batch/2"}, "pinnedTTL": "30s", "sampleFrequency": "7",
		}),
		Entry("priorityPolicy None without groups", map[string]any{"priorityPolicy": "None"}),
		Entry("a push consumer without acks", push(map[string]any{"ackPolicy": "None"})),
	)

	DescribeTable("refuses changes JetStream cannot make in place, naming the field",
		func(initial, change map[string]any, field, message string) {
			u := manifest(initial)
			Expect(k8s.Create(ctx, u)).To(Succeed())
			DeferCleanup(func() { _ = k8s.Delete(ctx, u) })
			spec := u.Object["spec"].(map[string]any)
			for k, v := range change {
				if v == nil {
					delete(spec, k)
				} else {
					spec[k] = v
				}
			}
			err := k8s.Update(ctx, u, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("pull to push", map[string]any{}, map[string]any{"deliverSubject": "deliver.now"}, "spec.deliverSubject", "cannot turn a pull consumer into a push consumer"),
		Entry("push to pull", push(nil), map[string]any{"deliverSubject": nil}, "spec.deliverSubject", "delete and recreate"),
		Entry("replayPolicy", map[string]any{}, map[string]any{"replayPolicy": "Original"}, "spec.replayPolicy", "replayPolicy is immutable"),
		Entry("flowControl", push(map[string]any{"idleHeartbeat": "5s"}), map[string]any{"flowControl": true}, "spec.flowControl", "flowControl is immutable"),
		Entry("idleHeartbeat", push(map[string]any{"idleHeartbeat": "5s"}), map[string]any{"idleHeartbeat": "10s"}, "spec.idleHeartbeat", "idleHeartbeat is immutable"),
		Entry("maxWaiting", map[string]any{"maxWaiting": 64}, map[string]any{"maxWaiting": 128}, "spec.maxWaiting", "maxWaiting is immutable"),
	)

	DescribeTable("accepts changes JetStream makes in place",
		func(initial, change map[string]any) {
			u := manifest(initial)
			Expect(k8s.Create(ctx, u)).To(Succeed())
			DeferCleanup(func() { _ = k8s.Delete(ctx, u) })
			spec := u.Object["spec"].(map[string]any)
			for k, v := range change {
				if v == nil {
					delete(spec, k)
				} else {
					spec[k] = v
				}
			}
			Expect(k8s.Update(ctx, u, client.DryRunAll)).To(Succeed())
		},
		Entry("another deliver subject", push(nil), map[string]any{"deliverSubject": "deliver.elsewhere"}),
		Entry("a deliver group added", push(nil), map[string]any{"deliverGroup": "workers"}),
		Entry("another priority policy", map[string]any{"priorityPolicy": "Pinned", "priorityGroups": []any{"a"}},
			map[string]any{"priorityPolicy": "Overflow"}),
		Entry("paused, then resumed", map[string]any{"pauseUntil": "2030-01-01T00:00:00Z"}, map[string]any{"pauseUntil": nil}),
		Entry("pull request limits", map[string]any{"maxRequestBatch": 10}, map[string]any{"maxRequestBatch": 20, "maxRequestExpires": "1m"}),
	)
})
