package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// IncompatibleError is a newer minor version of a schema that breaks the
// Backward rule against an older one: Property names where (a dotted path
// from the data's root, "address.city"; "tags[]" for an array's items;
// "(root)" for the data itself), Reason what changed.
type IncompatibleError struct {
	Property string
	Reason   string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("property %s: %s", e.Property, e.Reason)
}

// CheckCompatible checks that newer may follow older as a minor version of
// the same major under the Backward rule: a new minor may only add optional
// properties. It refuses, at any depth of nested object properties and
// array items:
//
//   - a property of older missing from newer (removed);
//   - a property newer requires that older did not (a new required
//     property, or an optional one made required);
//   - a property older required that newer does not (its producers may
//     drop it: as good as removed for a consumer of older);
//   - a changed type (any difference in the "type" keyword's set);
//   - a narrowed enum (a value of older's enum missing from newer's, or an
//     enum where older had none).
//
// Both documents must be JSON objects; keywords other than type, enum,
// properties, required and items are not compared, and references ($ref)
// are not followed. The result is nil or an *IncompatibleError naming the
// first violation found (properties in name order).
func CheckCompatible(older, newer json.RawMessage) error {
	o, err := decodeObject(older)
	if err != nil {
		return fmt.Errorf("older schema: %w", err)
	}
	n, err := decodeObject(newer)
	if err != nil {
		return fmt.Errorf("newer schema: %w", err)
	}
	return compare("", o, n)
}

func decodeObject(doc json.RawMessage) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

func propertyName(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func incompatible(path, format string, args ...any) *IncompatibleError {
	return &IncompatibleError{Property: propertyName(path), Reason: fmt.Sprintf(format, args...)}
}

// compare checks the subschema newer against older at path.
func compare(path string, older, newer map[string]any) error {
	if ot, nt := typeSet(older), typeSet(newer); !slices.Equal(ot, nt) {
		return incompatible(path, "type changed from %s to %s", describeTypes(ot), describeTypes(nt))
	}
	if err := compareEnum(path, older, newer); err != nil {
		return err
	}
	oldReq, newReq := stringSet(older["required"]), stringSet(newer["required"])
	oldProps, _ := older["properties"].(map[string]any)
	newProps, _ := newer["properties"].(map[string]any)
	for _, name := range sortedKeys(newReq) {
		if !oldReq[name] {
			if _, existed := oldProps[name]; existed {
				return incompatible(join(path, name), "optional in the older version, required in the newer one")
			}
			return incompatible(join(path, name), "new required property")
		}
	}
	for _, name := range sortedKeys(oldReq) {
		if !newReq[name] {
			return incompatible(join(path, name), "required in the older version, no longer required in the newer one")
		}
	}
	for _, name := range sortedKeys(oldProps) {
		np, ok := newProps[name]
		if !ok {
			return incompatible(join(path, name), "removed")
		}
		oldSub, oOK := oldProps[name].(map[string]any)
		newSub, nOK := np.(map[string]any)
		if oOK && nOK {
			if err := compare(join(path, name), oldSub, newSub); err != nil {
				return err
			}
		}
	}
	if oi, ok := older["items"].(map[string]any); ok {
		ni, ok := newer["items"].(map[string]any)
		if !ok {
			return incompatible(path+"[]", "items schema removed")
		}
		if err := compare(path+"[]", oi, ni); err != nil {
			return err
		}
	}
	return nil
}

// typeSet is the sorted set of the "type" keyword (none: nil).
func typeSet(s map[string]any) []string {
	var out []string
	switch t := s["type"].(type) {
	case string:
		out = []string{t}
	case []any:
		for _, v := range t {
			if str, ok := v.(string); ok {
				out = append(out, str)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func describeTypes(t []string) string {
	switch len(t) {
	case 0:
		return "any"
	case 1:
		return t[0]
	}
	return fmt.Sprint(t)
}

// compareEnum refuses a narrowed enum.
func compareEnum(path string, older, newer map[string]any) error {
	ne, newHas := newer["enum"].([]any)
	if !newHas {
		return nil // none, or as wide as before
	}
	oe, oldHas := older["enum"].([]any)
	if !oldHas {
		return incompatible(path, "enum added: values allowed before are refused now")
	}
	allowed := map[string]bool{}
	for _, v := range ne {
		allowed[canonical(v)] = true
	}
	for _, v := range oe {
		if c := canonical(v); !allowed[c] {
			return incompatible(path, "enum narrowed: %s removed", c)
		}
	}
	return nil
}

func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func stringSet(v any) map[string]bool {
	out := map[string]bool{}
	list, _ := v.([]any)
	for _, x := range list {
		if s, ok := x.(string); ok {
			out[s] = true
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
