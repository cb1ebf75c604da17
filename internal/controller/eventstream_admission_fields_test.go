package controller_test

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Admission of the stream settings beyond limits (issue 17): combinations
// JetStream refuses, and changes it cannot make, are refused by the API
// server with a message naming the field and saying what to do.
var _ = Describe("EventStream admission of the JetStream stream settings", func() {
	ctx := context.Background()

	create := func(name string, spec map[string]any) error {
		return k8s.Create(ctx, unstructuredStream(name, spec), client.DryRunAll, client.FieldValidation("Strict"))
	}
	with := func(kv ...any) map[string]any {
		spec := map[string]any{"subjects": []any{"adm.>"}}
		for i := 0; i < len(kv); i += 2 {
			spec[kv[i].(string)] = kv[i+1]
		}
		return spec
	}

	DescribeTable("rejects a combination JetStream refuses, naming the field",
		func(spec map[string]any, field, message string) {
			err := create(uniqueName("combo"), spec)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), err.Error())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("allowRollup with denyPurge", with("allowRollup", true, "denyPurge", true), "spec.allowRollup", "cannot be combined with denyPurge"),
		Entry("discardNewPerSubject with discard Old", with("discardNewPerSubject", true, "maxMsgsPerSubject", 5), "spec.discardNewPerSubject", "needs discard: New"),
		Entry("discardNewPerSubject without maxMsgsPerSubject", with("discardNewPerSubject", true, "discard", "New"), "spec.discardNewPerSubject", "maxMsgsPerSubject above 0"),
		Entry("subjectDeleteMarkerTTL without allowMsgTTL", with("subjectDeleteMarkerTTL", "10m", "allowRollup", true), "spec.subjectDeleteMarkerTTL", "needs allowMsgTTL and allowRollup"),
		Entry("subjectDeleteMarkerTTL on a mirror", map[string]any{"mirror": map[string]any{"name": "O"}, "subjectDeleteMarkerTTL": "10m", "allowMsgTTL": true, "allowRollup": true}, "spec.subjectDeleteMarkerTTL", "cannot be set on a mirror"),
		Entry("a counter stream with Interest retention", with("allowMsgCounter", true, "retention", "Interest"), "spec.allowMsgCounter", "retention Limits"),
		Entry("a counter stream with message TTLs", with("allowMsgCounter", true, "allowMsgTTL", true), "spec.allowMsgCounter", "without allowMsgTTL"),
		Entry("message schedules without allowRollup", with("allowMsgSchedules", true), "spec.allowMsgSchedules", "needs allowRollup"),
		Entry("message schedules with sources", map[string]any{"sources": []any{map[string]any{"name": "O"}}, "allowMsgSchedules": true, "allowRollup": true}, "spec.allowMsgSchedules", "with sources"),
		Entry("Async persistence on memory storage", with("persistMode", "Async", "storage", "Memory"), "spec.persistMode", "needs file storage"),
		Entry("Async persistence with atomic publish", with("persistMode", "Async", "allowAtomicPublish", true), "spec.persistMode", "without allowAtomicPublish"),
		Entry("an unknown persist mode", with("persistMode", "Lazy"), "spec.persistMode", "supported values"),
		Entry("a mirror with a first sequence", map[string]any{"mirror": map[string]any{"name": "O"}, "firstSequence": 10}, "spec.mirror", "cannot set firstSequence"),
		Entry("a negative first sequence", with("firstSequence", -1), "spec.firstSequence", "greater than or equal to 0"),
		Entry("maxConsumers below -1", with("maxConsumers", -2), "spec.maxConsumers", "greater than or equal to -1"),
		Entry("a negative consumer maxAckPending", with("consumerLimits", map[string]any{"maxAckPending": -1}), "spec.consumerLimits.maxAckPending", "greater than or equal to 0"),
		Entry("a consumer inactiveThreshold in days", with("consumerLimits", map[string]any{"inactiveThreshold": "1d"}), "spec.consumerLimits.inactiveThreshold", "days are not supported"),
		Entry("a subject transform without a destination", with("subjectTransform", map[string]any{"source": "adm.>"}), "spec.subjectTransform.destination", "Required"),
		Entry("a republish without a destination", with("republish", map[string]any{"source": "adm.>"}), "spec.republish.destination", "Required"),
		Entry("a delete-marker TTL in days", with("subjectDeleteMarkerTTL", "1d", "allowMsgTTL", true, "allowRollup", true), "spec.subjectDeleteMarkerTTL", "days are not supported"),
	)

	It("keeps the KV_ and OBJ_ stream names to the bucket kinds, by spec.name and by metadata.name", func() {
		for _, name := range []string{"KV_CONFIG", "OBJ_files"} {
			err := create(uniqueName("bucketname"), with("name", name))
			Expect(err).To(HaveOccurred(), name)
			Expect(err.Error()).To(And(ContainSubstring("spec.name"), ContainSubstring("declare an EventKeyValue or an EventObjectStore")))
		}
		for _, prefix := range []string{"kv-", "obj-"} {
			err := create(uniqueName(prefix+"events"), with())
			Expect(err).To(HaveOccurred(), prefix)
			Expect(err.Error()).To(And(ContainSubstring("metadata.name would make the stream KV_… or OBJ_…"), ContainSubstring("set spec.name")))
			Expect(create(uniqueName(prefix+"events"), with("name", "EVENTS_"+strings.ToUpper(strings.TrimSuffix(prefix, "-"))))).To(Succeed(),
				"with a spec.name of another form the resource's name does not matter")
		}
		Expect(create(uniqueName("kvx"), with("name", "KVX_AND_OBJ_"))).To(Succeed(), "only the prefixes are reserved")
	})

	It("accepts every setting together where JetStream does", func() {
		Expect(create(uniqueName("all"), with(
			"subjectTransform", map[string]any{"source": "adm.in.*", "destination": "adm.out.{{wildcard(1)}}"},
			"republish", map[string]any{"destination": "copy.adm.>", "headersOnly": true},
			"allowRollup", true, "allowMsgTTL", true, "subjectDeleteMarkerTTL", "10m",
			"discard", "New", "maxMsgsPerSubject", 10, "discardNewPerSubject", true,
			"firstSequence", 100, "consumerLimits", map[string]any{"inactiveThreshold": "1h", "maxAckPending": 100},
			"noAck", true, "maxConsumers", -1, "allowAtomicPublish", true, "allowBatchPublish", true,
			"persistMode", "Default", "sealed", false,
		))).To(Succeed())
		Expect(create(uniqueName("counter"), with("allowMsgCounter", true))).To(Succeed())
		Expect(create(uniqueName("schedules"), with("allowMsgSchedules", true, "allowRollup", true))).To(Succeed())
		Expect(create(uniqueName("async"), with("persistMode", "Async"))).To(Succeed())
	})

	// update creates initial for real, applies change (nil removes the
	// field) and sends the update as a dry run.
	update := func(initial, change map[string]any) error {
		name := uniqueName("transition")
		initial["subjects"] = []any{name + ".>"}
		u := unstructuredStream(name, initial)
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
		return k8s.Update(ctx, u, client.DryRunAll)
	}

	DescribeTable("rejects changes JetStream cannot make in place, naming the field",
		func(initial, change map[string]any, field, message string) {
			err := update(initial, change)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("unsealing", map[string]any{"sealed": true}, map[string]any{"sealed": false}, "spec.sealed", "sealed cannot be unset"),
		Entry("removing sealed", map[string]any{"sealed": true}, map[string]any{"sealed": nil}, "spec.sealed", "sealed cannot be unset"),
		Entry("turning denyDelete off", map[string]any{"denyDelete": true}, map[string]any{"denyDelete": false}, "spec.denyDelete", "cannot be turned off"),
		Entry("turning denyPurge off", map[string]any{"denyPurge": true}, map[string]any{"denyPurge": nil}, "spec.denyPurge", "cannot be turned off"),
		Entry("turning allowMsgTTL off", map[string]any{"allowMsgTTL": true}, map[string]any{"allowMsgTTL": false}, "spec.allowMsgTTL", "cannot be turned off"),
		Entry("turning allowMsgSchedules off", map[string]any{"allowMsgSchedules": true, "allowRollup": true}, map[string]any{"allowMsgSchedules": nil}, "spec.allowMsgSchedules", "cannot be turned off"),
		Entry("making a stream a counter", map[string]any{}, map[string]any{"allowMsgCounter": true}, "spec.allowMsgCounter", "allowMsgCounter is immutable"),
		Entry("a counter no more", map[string]any{"allowMsgCounter": true}, map[string]any{"allowMsgCounter": false}, "spec.allowMsgCounter", "allowMsgCounter is immutable"),
		Entry("persistMode Default → Async", map[string]any{}, map[string]any{"persistMode": "Async"}, "spec.persistMode", "persistMode is immutable"),
		Entry("a new first sequence", map[string]any{"firstSequence": 10}, map[string]any{"firstSequence": 20}, "spec.firstSequence", "firstSequence is immutable"),
		Entry("a first sequence added later", map[string]any{}, map[string]any{"firstSequence": 20}, "spec.firstSequence", "firstSequence is immutable"),
	)

	DescribeTable("allows the changes JetStream makes in place",
		func(initial, change map[string]any) {
			Expect(update(initial, change)).To(Succeed())
		},
		Entry("sealing", map[string]any{}, map[string]any{"sealed": true}),
		Entry("turning allowMsgTTL and denyDelete on", map[string]any{}, map[string]any{"allowMsgTTL": true, "denyDelete": true}),
		Entry("a new republish, subject transform and consumer limits", map[string]any{},
			map[string]any{"republish": map[string]any{"destination": "elsewhere.>"}, "subjectTransform": map[string]any{"destination": "t.>"},
				"consumerLimits": map[string]any{"maxAckPending": 10}}),
		Entry("turning allowRollup and allowBatchPublish off", map[string]any{"allowRollup": true, "allowBatchPublish": true},
			map[string]any{"allowRollup": false, "allowBatchPublish": nil}),
		Entry("persistMode left unset → Default", map[string]any{}, map[string]any{"persistMode": "Default"}),
	)
})
