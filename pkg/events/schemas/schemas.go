// Package schemas is the event schema registry: JSON Schemas (draft 2020-12)
// for event data, one per event type and schema version, stored in a
// JetStream KeyValue bucket (DefaultBucket) that the operator fills from
// EventSchema resources and that services read, watch and validate against.
//
// This file is the contract between the operator and the library: the key
// layout, the stored record and how a schema is compiled. Both sides use
// these functions, so that what the operator accepts is exactly what a
// service enforces.
package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// DefaultBucket is the KeyValue bucket the registry lives in unless told
// otherwise.
const DefaultBucket = "EVENT_SCHEMAS"

// Compatibility is the rule a new minor version of a schema must follow
// against the other minors of its major version.
type Compatibility string

const (
	// Backward: a new minor may only add optional properties — no new
	// required property, no removed property, no changed type, no narrowed
	// enum. The default.
	Backward Compatibility = "Backward"
	// None: no check.
	None Compatibility = "None"
)

// Record is the value stored under Key(Type, Version), encoded as JSON.
type Record struct {
	// Type is the event type, e.g. "user.created".
	Type string `json:"type"`
	// Version is the schema version, "major.minor": the events' schemaversion.
	Version string `json:"version"`
	// Schema is the JSON Schema (draft 2020-12 unless it names another
	// $schema) the data of events of this type and version follow.
	Schema json.RawMessage `json:"schema"`
	// Compatibility is the rule the schema was admitted under.
	Compatibility Compatibility `json:"compatibility,omitempty"`
	// Description is free text for humans.
	Description string `json:"description,omitempty"`
	// Owner names who registered the schema: "<namespace>/<name>" of an
	// EventSchema resource when the operator wrote it, or any string a
	// program chose. The operator never overwrites a key another owner holds.
	Owner string `json:"owner,omitempty"`
}

// Key is the KeyValue key of (eventType, version): "<type>.<version>", e.g.
// "user.created.1.0". Characters a KeyValue key cannot hold (anything but
// letters, digits, '-', '_', '/' and single interior dots) are escaped as
// "=XX" (hex), and '=' itself too, so distinct types never share a key. The
// version is always the last two tokens.
func Key(eventType, version string) string {
	return escape(eventType) + "." + escape(version)
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		keep := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
		if c == '.' && i > 0 && i < len(s)-1 && s[i+1] != '.' {
			keep = true
		}
		if keep {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// URI names the schema of (eventType, version); the publisher puts it in an
// event's dataschema when the event has none.
func URI(eventType, version string) string {
	return "urn:events:schema:" + eventType + ":" + version
}

// ParseVersion splits "major.minor" (digits only, no leading zeros but "0").
func ParseVersion(v string) (major, minor int, err error) {
	maj, min, ok := strings.Cut(v, ".")
	if ok {
		major, err = parseNumber(maj)
		if err == nil {
			minor, err = parseNumber(min)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("schema version %q is not major.minor", v)
	}
	return major, minor, nil
}

func parseNumber(s string) (int, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || strings.TrimLeft(s, "0123456789") != "" || len(s) > 9 {
		return 0, errors.New("not a number")
	}
	return strconv.Atoi(s)
}

// Schema is a compiled schema.
type Schema = jsonschema.Schema

// Compile compiles a JSON Schema document. Draft 2020-12 applies unless the
// document's $schema names another draft. References ($ref) resolve only
// inside the document: nothing is read from files or the network, so a
// schema a tenant declares cannot make the operator or a service fetch
// anything. The error is the compiler's message.
func Compile(doc json.RawMessage) (*Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("schema is not a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file, no http
	const loc = "urn:events:schema"
	if err := c.AddResource(loc, v); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}
