package schemas_test

import (
	"errors"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// A bucket deleted (by hand, or before the operator repairs it) and created
// again is found again: its contents replace the cache.
func TestBucketDeletedAndCreatedAgain(t *testing.T) {
	env := setup(t)
	register(t, env.js, "user.created", "1.0", userCreatedV1)
	reg := open(t, env.js, schemas.WithPollInterval(50*time.Millisecond))
	bad := userCreated(t, "1.0", map[string]any{"user_id": 1})
	if _, err := reg.ValidateData(bad); !errors.Is(err, events.ErrValidation) {
		t.Fatal(err)
	}
	if err := env.js.DeleteKeyValue(ctxT(t, 5*time.Second), schemas.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	// Gone: the last schemas seen stay in force.
	time.Sleep(2 * schemas.CheckIntervalFactor * 50 * time.Millisecond)
	if _, err := reg.ValidateData(bad); !errors.Is(err, events.ErrValidation) {
		t.Fatalf("after the bucket was deleted: %v", err)
	}
	// Created again with other contents: they replace the old ones.
	register(t, env.js, "other.type", "1.0", `{"type":"object","required":["x"]}`)
	e := userCreated(t, "1.0", map[string]any{"y": 1})
	e.Type = "other.type"
	eventually(t, "the recreated bucket is watched", func() bool {
		_, err := reg.ValidateData(e)
		return err != nil
	})
	if _, err := reg.ValidateData(bad); err != nil {
		t.Errorf("user.created is not in the new bucket, yet: %v", err)
	}
	// And its changes are followed.
	if err := schemas.Unregister(ctxT(t, 5*time.Second), env.js, "other.type", "1.0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a key deleted in the new bucket", func() bool {
		_, err := reg.ValidateData(e)
		return err == nil
	})
}
