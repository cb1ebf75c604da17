package schemafiles_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/internal/schemafiles"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// The samples declare the seed's four schemas, each with exactly the
// properties of the example service's struct for the type, all required.
func TestLoadSamples(t *testing.T) {
	dir, err := repo.Path("config", "samples")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := schemafiles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	structs := map[string]any{
		auth.TypeUserCreated: auth.UserCreated{}, auth.TypeUserLoginSucceeded: auth.UserLoginSucceeded{},
		auth.TypeUserLoginFailed: auth.UserLoginFailed{}, auth.TypeUserRoleAssigned: auth.UserRoleAssigned{},
	}
	if len(recs) != len(structs) {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	for _, rec := range recs {
		v, ok := structs[rec.Type]
		if !ok || rec.Version != "1.0" || rec.Compatibility != schemas.Backward || !strings.HasPrefix(rec.Owner, "default/") {
			t.Errorf("record %s %s %s %s", rec.Type, rec.Version, rec.Compatibility, rec.Owner)
			continue
		}
		if _, err := schemas.Compile(rec.Schema); err != nil {
			t.Errorf("%s: %v", rec.Type, err)
		}
		var doc struct {
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(rec.Schema, &doc); err != nil {
			t.Fatal(err)
		}
		var fields []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			fields = append(fields, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		var props []string
		for p := range doc.Properties {
			props = append(props, p)
		}
		if !sameSet(fields, props) || !sameSet(fields, doc.Required) {
			t.Errorf("%s: struct fields %v, schema properties %v, required %v", rec.Type, fields, props, doc.Required)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		if !m[s] {
			return false
		}
	}
	return true
}

func TestLoadSkipsOtherKindsAndNamesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "kind: EventStream\nmetadata: {name: s}\n---\nkind: EventSchema\nmetadata: {name: x, namespace: team}\nspec: {type: a.b, version: \"2.1\", schema: {type: object}}\n")
	write("notes.txt", "not yaml: [")
	recs, err := schemafiles.Load(dir)
	if err != nil || len(recs) != 1 || recs[0].Owner != "team/x" || recs[0].Version != "2.1" || string(recs[0].Schema) != `{"type":"object"}` {
		t.Fatalf("%+v, %v", recs, err)
	}
	write("b.yaml", "kind: [")
	if _, err := schemafiles.Load(dir); err == nil || !strings.Contains(err.Error(), "b.yaml, document 1") {
		t.Fatalf("bad file: %v", err)
	}
}
