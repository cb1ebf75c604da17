package schemas_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// userCreated10 is the seed's user.created 1.0 (config/samples).
const userCreated10 = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["user_id", "email", "first_name", "last_name", "status"],
  "properties": {
    "user_id": {"type": "string", "minLength": 1},
    "email": {"type": "string", "minLength": 1},
    "first_name": {"type": "string"},
    "last_name": {"type": "string"},
    "status": {"type": "string", "minLength": 1}
  }
}`

func TestCheckCompatible(t *testing.T) {
	nested := `{"type":"object","properties":{"address":{"type":"object","required":["city"],
	  "properties":{"city":{"type":"string"},"zip":{"type":"string"}}},
	  "tags":{"type":"array","items":{"type":"object","properties":{"k":{"type":"string","enum":["a","b"]}}}}}}`
	tests := []struct {
		name           string
		older, newer   string
		wantProperty   string // "" means compatible
		wantReasonPart string
	}{
		{name: "an identical schema is compatible", older: userCreated10, newer: userCreated10},
		{name: "adding an optional property is compatible", older: userCreated10,
			newer: `{"type":"object","required":["user_id","email","first_name","last_name","status"],
			  "properties":{"user_id":{"type":"string"},"email":{"type":"string"},"first_name":{"type":"string"},
			  "last_name":{"type":"string"},"status":{"type":"string"},"locale":{"type":"string"}}}`},
		{name: "keywords other than type, enum, properties, required and items may change", older: userCreated10,
			newer: `{"type":"object","required":["user_id","email","first_name","last_name","status"],"additionalProperties":false,
			  "properties":{"user_id":{"type":"string","maxLength":64},"email":{"type":"string","format":"email"},"first_name":{"type":"string"},
			  "last_name":{"type":"string"},"status":{"type":"string"}}}`},
		{name: "a new required property is refused", older: userCreated10,
			newer: `{"type":"object","required":["user_id","email","first_name","last_name","status","locale"],
			  "properties":{"user_id":{"type":"string"},"email":{"type":"string"},"first_name":{"type":"string"},
			  "last_name":{"type":"string"},"status":{"type":"string"},"locale":{"type":"string"}}}`,
			wantProperty: "locale", wantReasonPart: "new required property"},
		{name: "an optional property made required is refused",
			older:        `{"type":"object","properties":{"a":{"type":"string"}}}`,
			newer:        `{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}`,
			wantProperty: "a", wantReasonPart: "optional in the older version"},
		{name: "a required property made optional is refused",
			older:        `{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}`,
			newer:        `{"type":"object","properties":{"a":{"type":"string"}}}`,
			wantProperty: "a", wantReasonPart: "no longer required"},
		{name: "a removed property is refused",
			older:        `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}`,
			newer:        `{"type":"object","properties":{"a":{"type":"string"}}}`,
			wantProperty: "b", wantReasonPart: "removed"},
		{name: "a changed type is refused",
			older:        `{"type":"object","properties":{"n":{"type":"integer"}}}`,
			newer:        `{"type":"object","properties":{"n":{"type":"string"}}}`,
			wantProperty: "n", wantReasonPart: "type changed from integer to string"},
		{name: "a type list in another order is the same type",
			older: `{"type":"object","properties":{"n":{"type":["string","null"]}}}`,
			newer: `{"type":"object","properties":{"n":{"type":["null","string"]}}}`},
		{name: "a changed root type is refused on (root)",
			older: `{"type":"object"}`, newer: `{"type":"array"}`,
			wantProperty: "(root)", wantReasonPart: "type changed"},
		{name: "a narrowed enum is refused, naming the value",
			older:        `{"type":"object","properties":{"reason":{"type":"string","enum":["user_not_found","invalid_password","inactive_account"]}}}`,
			newer:        `{"type":"object","properties":{"reason":{"type":"string","enum":["user_not_found","invalid_password"]}}}`,
			wantProperty: "reason", wantReasonPart: `"inactive_account" removed`},
		{name: "a widened enum is compatible",
			older: `{"type":"object","properties":{"reason":{"enum":["a"]}}}`,
			newer: `{"type":"object","properties":{"reason":{"enum":["a","b"]}}}`},
		{name: "an enum dropped altogether is compatible (wider)",
			older: `{"type":"object","properties":{"reason":{"enum":["a"]}}}`,
			newer: `{"type":"object","properties":{"reason":{}}}`},
		{name: "an enum added where there was none is refused",
			older:        `{"type":"object","properties":{"reason":{"type":"string"}}}`,
			newer:        `{"type":"object","properties":{"reason":{"type":"string","enum":["a"]}}}`,
			wantProperty: "reason", wantReasonPart: "enum added"},
		{name: "nested object properties are checked, named by a dotted path", older: nested,
			newer: `{"type":"object","properties":{"address":{"type":"object","required":["city"],
			  "properties":{"city":{"type":"string"}}},
			  "tags":{"type":"array","items":{"type":"object","properties":{"k":{"type":"string","enum":["a","b"]}}}}}}`,
			wantProperty: "address.zip", wantReasonPart: "removed"},
		{name: "array items are checked, named with []", older: nested,
			newer: `{"type":"object","properties":{"address":{"type":"object","required":["city"],
			  "properties":{"city":{"type":"string"},"zip":{"type":"string"}}},
			  "tags":{"type":"array","items":{"type":"object","properties":{"k":{"type":"string","enum":["a"]}}}}}}`,
			wantProperty: "tags[].k", wantReasonPart: "enum narrowed"},
		{name: "nested additions of optional properties are compatible", older: nested,
			newer: `{"type":"object","properties":{"address":{"type":"object","required":["city"],
			  "properties":{"city":{"type":"string"},"zip":{"type":"string"},"street":{"type":"string"}}},
			  "tags":{"type":"array","items":{"type":"object","properties":{"k":{"type":"string","enum":["a","b","c"]},"v":{}}}}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := schemas.CheckCompatible(json.RawMessage(tc.older), json.RawMessage(tc.newer))
			if tc.wantProperty == "" {
				if err != nil {
					t.Fatalf("want compatible, got %v", err)
				}
				return
			}
			var ie *schemas.IncompatibleError
			if !errors.As(err, &ie) {
				t.Fatalf("want *IncompatibleError on %s, got %v", tc.wantProperty, err)
			}
			if ie.Property != tc.wantProperty {
				t.Errorf("property = %q, want %q (error: %v)", ie.Property, tc.wantProperty, err)
			}
			if !strings.Contains(ie.Reason, tc.wantReasonPart) {
				t.Errorf("reason = %q, want it to contain %q", ie.Reason, tc.wantReasonPart)
			}
		})
	}
}

func TestCheckCompatibleRefusesNonObjects(t *testing.T) {
	for _, tc := range []struct{ older, newer string }{{`true`, `{}`}, {`{}`, `[1]`}, {`{`, `{}`}} {
		err := schemas.CheckCompatible(json.RawMessage(tc.older), json.RawMessage(tc.newer))
		var ie *schemas.IncompatibleError
		if err == nil || errors.As(err, &ie) {
			t.Errorf("CheckCompatible(%s, %s) = %v, want a plain error about the document", tc.older, tc.newer, err)
		}
	}
}
