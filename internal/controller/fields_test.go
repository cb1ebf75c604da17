package controller

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
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

// The table of every JetStream setting in docs/design.md is generated from
// the field tables, between these markers; UPDATE_DESIGN_TABLE=1 go test
// -run TestDesignTableMatchesFieldTables ./internal/controller rewrites it.
const (
	designTableBegin = "<!-- jetstream-settings: generated from internal/controller/fields_*_test.go; do not edit -->\n"
	designTableEnd   = "<!-- end of jetstream-settings -->\n"
)

func TestEveryJetStreamConfigHasAFieldTable(t *testing.T) {
	for _, want := range []reflect.Type{
		reflect.TypeFor[jetstream.StreamConfig](), reflect.TypeFor[jetstream.ConsumerConfig](),
		reflect.TypeFor[jetstream.KeyValueConfig](), reflect.TypeFor[jetstream.ObjectStoreConfig](),
	} {
		if !slices.ContainsFunc(fieldTables, func(ft fieldTable) bool { return ft.config == want }) {
			t.Errorf("no field table for jetstream.%s", want.Name())
		}
	}
}

func TestDesignTableMatchesFieldTables(t *testing.T) {
	const path = "../../docs/design.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin := bytes.Index(doc, []byte(designTableBegin))
	end := bytes.Index(doc, []byte(designTableEnd))
	if begin < 0 || end < begin {
		t.Fatalf("%s has no generated JetStream settings table (markers %q … %q)", path, designTableBegin, designTableEnd)
	}
	want := renderDesignTable()
	got := string(doc[begin+len(designTableBegin) : end])
	if got == want {
		return
	}
	if os.Getenv("UPDATE_DESIGN_TABLE") == "1" {
		out := slices.Concat(doc[:begin+len(designTableBegin)], []byte(want), doc[end:])
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the table in %s", path)
		return
	}
	t.Errorf("the JetStream settings table in %s is out of date with the field tables; run UPDATE_DESIGN_TABLE=1 go test -run TestDesignTableMatchesFieldTables ./internal/controller", path)
}

// renderDesignTable writes one Markdown table per configuration struct, its
// fields in nats.go's order.
func renderDesignTable() string {
	tables := slices.Clone(fieldTables)
	order := []string{"StreamConfig", "ConsumerConfig", "KeyValueConfig", "ObjectStoreConfig"}
	slices.SortFunc(tables, func(a, b fieldTable) int {
		return slices.Index(order, a.config.Name()) - slices.Index(order, b.config.Name())
	})
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, ft := range tables {
		kind := reflect.TypeOf(ft.resource).Elem().Name()
		fmt.Fprintf(&b, "\n**`jetstream.%s`** — declared by `%s`\n\n", ft.config.Name(), kind)
		b.WriteString("| JetStream setting | declared at | default | changes in place |\n|---|---|---|---|\n")
		for i := range ft.config.NumField() {
			f := ft.config.Field(i)
			d, ok := ft.fields[f.Name]
			if !f.IsExported() || !ok {
				continue
			}
			name := f.Name
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
				name += " (`" + tag + "`)"
			}
			if d.path == "" {
				fmt.Fprintf(&b, "| %s | not declared: %s | | |\n", name, cell(d.omitted))
				continue
			}
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", name, d.path, cell(d.def), cell(d.inPlace))
		}
	}
	b.WriteString("\n")
	return b.String()
}
