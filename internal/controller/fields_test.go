package controller

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Every field of nats.go's JetStream configuration structs
// (jetstream.StreamConfig, ConsumerConfig, KeyValueConfig,
// ObjectStoreConfig) is either declared by a resource or listed here as
// deliberately left out, with the reason. A nats.go upgrade that adds a
// field fails TestJetStreamFieldsAreDeclaredOrExplained until someone
// decides which it is.

// jsField is one field of a JetStream configuration struct.
type jsField struct {
	// path is where a resource declares it: a JSON path in the resource
	// ("spec.maxAge", "spec.mirror.external"); empty when omitted is set.
	path string
	// def is the default when the resource leaves it unset, as the design
	// table shows it ("168h", "JetStream's (1000)", "none").
	def string
	// inPlace says whether a change is applied to the existing object
	// ("yes") or why not ("no: …").
	inPlace string
	// omitted is why the field is deliberately not declared; path is empty.
	omitted string
}

// fieldTable documents one JetStream configuration struct: the resource
// kind that declares it (a zero value of its Go type) and every field.
type fieldTable struct {
	config   reflect.Type // jetstream.StreamConfig, …
	resource any          // &eventsv1.EventStream{}, …
	fields   map[string]jsField
}

// fieldTables is filled by the fields_*_test.go files, one per struct.
var fieldTables []fieldTable

func TestJetStreamFieldsAreDeclaredOrExplained(t *testing.T) {
	if len(fieldTables) == 0 {
		t.Fatal("no field tables registered")
	}
	for _, ft := range fieldTables {
		t.Run(ft.config.Name(), func(t *testing.T) {
			var names []string
			for i := range ft.config.NumField() {
				f := ft.config.Field(i)
				if !f.IsExported() {
					continue
				}
				names = append(names, f.Name)
				d, ok := ft.fields[f.Name]
				switch {
				case !ok:
					t.Errorf("%s.%s is neither declared nor listed as left out (add it to the field table with a path or the reason it is omitted)", ft.config.Name(), f.Name)
				case d.path == "" && d.omitted == "":
					t.Errorf("%s.%s: the table gives neither a path nor a reason for leaving it out", ft.config.Name(), f.Name)
				case d.path != "" && d.omitted != "":
					t.Errorf("%s.%s: declared at %s and listed as omitted", ft.config.Name(), f.Name, d.path)
				case d.path != "":
					if err := resolveJSONPath(reflect.TypeOf(ft.resource), d.path); err != "" {
						t.Errorf("%s.%s: declared at %s, but %s", ft.config.Name(), f.Name, d.path, err)
					}
					if d.inPlace == "" {
						t.Errorf("%s.%s: the table does not say whether it can change in place", ft.config.Name(), f.Name)
					}
				}
			}
			for name := range ft.fields {
				if !slices.Contains(names, name) {
					t.Errorf("the table lists %s.%s, which nats.go does not have", ft.config.Name(), name)
				}
			}
		})
	}
}

// resolveJSONPath walks path ("spec.mirror.external.apiPrefix") through the
// JSON field names of t and says what is wrong, or "" when it resolves.
func resolveJSONPath(t reflect.Type, path string) string {
	for _, seg := range strings.Split(path, ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return seg + " is below a " + t.Kind().String()
		}
		f, ok := jsonField(t, seg)
		if !ok {
			return t.Name() + " has no JSON field " + seg
		}
		t = f.Type
	}
	return ""
}

// jsonField finds the field of struct t whose JSON name is name, looking
// into inline (embedded) fields.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f, true
		}
		if tag == "" && (f.Anonymous || strings.Contains(opts, "inline")) {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if g, ok := jsonField(ft, name); ok {
					return g, true
				}
			}
		}
	}
	return reflect.StructField{}, false
}
