// Package schemafiles reads EventSchema manifests (the YAML files of
// config/samples) into schema registry records, so that the example
// programs and their tests can fill the registry bucket without
// Kubernetes: what the operator does for EventSchema resources in a
// cluster, schemas.Register does here.
package schemafiles

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/yaml"

	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// manifest is the part of an EventSchema resource a record needs.
type manifest struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Type          string                `json:"type"`
		Version       string                `json:"version"`
		Compatibility schemas.Compatibility `json:"compatibility"`
		Description   string                `json:"description"`
		Schema        json.RawMessage       `json:"schema"`
	} `json:"spec"`
}

// Load reads every EventSchema in the *.yaml files of dir (other kinds are
// skipped; a file may hold several documents separated by "---"), sorted
// by type then version. The owner of each record is "<namespace>/<name>"
// ("default" when the manifest names no namespace), as the operator would
// write it.
func Load(dir string) ([]schemas.Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var recs []schemas.Record
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, doc := range bytes.Split(data, []byte("\n---")) {
			var m manifest
			if err := yaml.Unmarshal(doc, &m); err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", f, i+1, err)
			}
			if m.Kind != "EventSchema" {
				continue
			}
			ns := m.Metadata.Namespace
			if ns == "" {
				ns = "default"
			}
			recs = append(recs, schemas.Record{
				Type: m.Spec.Type, Version: m.Spec.Version, Schema: m.Spec.Schema,
				Compatibility: m.Spec.Compatibility, Description: m.Spec.Description,
				Owner: ns + "/" + m.Metadata.Name,
			})
		}
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Type != recs[j].Type {
			return recs[i].Type < recs[j].Type
		}
		return recs[i].Version < recs[j].Version
	})
	return recs, nil
}

// Register loads the EventSchemas of dir and registers them in the
// registry bucket (schemas.Register, creating the bucket if missing). It
// returns how many it registered.
func Register(ctx context.Context, js jetstream.JetStream, dir string, opts ...schemas.Option) (int, error) {
	recs, err := Load(dir)
	if err != nil {
		return 0, err
	}
	for _, rec := range recs {
		if err := schemas.Register(ctx, js, rec, opts...); err != nil {
			return 0, fmt.Errorf("register %s %s (%s): %w", rec.Type, rec.Version, rec.Owner, err)
		}
	}
	return len(recs), nil
}
