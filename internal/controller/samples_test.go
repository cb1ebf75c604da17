package controller_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

var _ = Describe("config/samples", func() {
	It("are all accepted by the API server", func() {
		files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "events_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(len(files)).To(BeNumerically(">=", 8), "the seven default streams and example consumers")
		for _, f := range files {
			raw, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(yaml.Unmarshal(raw, &u.Object)).To(Succeed(), f)
			u.SetNamespace("default")
			Expect(k8s.Create(context.Background(), u, client.DryRunAll)).To(Succeed(), f)
		}
	})
})

// The manifests the docs tell users to apply: every document of kind
// events.giia.io in a ```yaml block of README.md and docs/*.md.
var _ = Describe("manifests in the docs", func() {
	It("are all accepted by the API server", func() {
		files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
		Expect(err).NotTo(HaveOccurred())
		files = append(files, filepath.Join("..", "..", "README.md"))
		// A fence may be indented (a block inside a list item): what a
		// reader copies is the block without that indentation.
		block := regexp.MustCompile("(?ms)^( *)```yaml\n(.*?)^ *```")
		n := 0
		for _, f := range files {
			raw, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			for _, m := range block.FindAllSubmatch(raw, -1) {
				lines := bytes.Split(m[2], []byte("\n"))
				for i, l := range lines {
					lines[i] = bytes.TrimPrefix(l, m[1])
				}
				manifest := bytes.Join(lines, []byte("\n"))
				dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
				for {
					u := &unstructured.Unstructured{}
					err := dec.Decode(&u.Object)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						// A block that is not a manifest (a values file) may
						// not decode; one of ours must.
						Expect(string(manifest)).NotTo(ContainSubstring("events.giia.io/"), "%s: %v", f, err)
						break
					}
					if u.GetAPIVersion() != "events.giia.io/v1alpha1" {
						continue
					}
					if u.GetNamespace() == "" {
						u.SetNamespace("default")
					}
					Expect(k8s.Create(context.Background(), u, client.DryRunAll)).To(Succeed(), "%s: %s %s", f, u.GetKind(), u.GetName())
					n++
				}
			}
		}
		GinkgoWriter.Printf("%d manifests from the docs accepted\n", n)
		Expect(n).To(BeNumerically(">=", 5), "the EventSchemas of docs/versioning.md and the EventReplays of docs/replay.md")
	})
})
