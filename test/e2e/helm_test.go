//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The streams chart's release (charts/eventstream-streams), installed in the
// samples namespace over the seven sample EventStreams.
const (
	streamsRelease = "eventstream-streams"
	streamsChart   = "charts/eventstream-streams"
)

// ---- 7b: metrics, HTTPS with authentication and authorization ----
// (after the samples, so that the operator's JetStream histogram has samples)

// checkSecureMetrics scrapes the manager's metrics endpoint as the chart
// configures it (--metrics-secure=true): no token is 401, a ServiceAccount
// token without RBAC is 403, a ServiceAccount bound to the chart's
// metrics-reader ClusterRole gets the metrics. The manager runs with the
// chart's RBAC, so its TokenReviews and SubjectAccessReviews pass only if the
// chart grants them (a refusal would be a 500 and a "forbidden" in its log).
func (s *suite) checkSecureMetrics() error {
	if !slices.Contains(s.chartArgs, "--metrics-secure=true") || !slices.Contains(s.chartArgs, "--metrics-bind-address=:8443") {
		return fmt.Errorf("the chart's manager args %q do not serve secure metrics on :8443", s.chartArgs)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", s.metricsPort)
	// The certificate is the manager's self-signed one: not verified here.
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed, loopback
	}}
	get := func(token string) (int, string, error) {
		req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	// Plain HTTP is not served.
	if code := httpStatus(s.ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", s.metricsPort)); code == 200 {
		return errors.New("the metrics endpoint answered 200 over plain HTTP")
	}
	code, body, err := get("")
	if err != nil {
		return fmt.Errorf("GET %s over HTTPS: %w", url, err)
	}
	if code != http.StatusUnauthorized {
		return fmt.Errorf("GET %s without a token: status %d, want 401\n%s", url, code, body)
	}
	logf(s.t, s.start, "metrics without a token: %d", code)

	// Two ServiceAccounts; tokens from the API server's TokenRequest API.
	const nobody, reader = "e2e-metrics-nobody", "e2e-metrics-reader"
	for _, sa := range []string{nobody, reader} {
		if _, err := s.kubectl(30*time.Second, "create", "serviceaccount", sa, "-n", samplesNS); err != nil {
			return err
		}
	}
	token := func(sa string) (string, error) {
		out, err := s.kubectlQuiet(30*time.Second, "create", "token", sa, "-n", samplesNS, "--duration=10m")
		if err != nil {
			return "", err
		}
		if t := strings.TrimSpace(out); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("kubectl create token %s: empty token", sa)
	}
	tok, err := token(nobody)
	if err != nil {
		return err
	}
	if code, body, err = get(tok); err != nil || code != http.StatusForbidden {
		return fmt.Errorf("GET %s as %s (no RBAC): status %d (%v), want 403\n%s", url, nobody, code, err, body)
	}
	logf(s.t, s.start, "metrics as ServiceAccount %s without RBAC: %d %s", nobody, code, strings.TrimSpace(body))

	role := release + "-eventstream-operator-metrics-reader"
	if _, err := s.kubectl(30*time.Second, "get", "clusterrole", role); err != nil {
		return fmt.Errorf("the chart's metrics-reader ClusterRole: %w", err)
	}
	if _, err := s.kubectl(30*time.Second, "create", "clusterrolebinding", "e2e-metrics-reader",
		"--clusterrole="+role, "--serviceaccount="+samplesNS+":"+reader); err != nil {
		return err
	}
	if tok, err = token(reader); err != nil {
		return err
	}
	// RBAC takes effect at once in the API server; poll briefly anyway.
	err = poll(s.ctx, 30*time.Second, time.Second, "metrics as the metrics-reader", func() error {
		code, body, err = get(tok)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d: %s", code, strings.TrimSpace(body))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range []string{"eventstream_operator_jetstream_request_duration_seconds", "controller_runtime_reconcile_total"} {
		if !strings.Contains(body, name) {
			return fmt.Errorf("the metrics body (%d bytes) has no %s", len(body), name)
		}
	}
	logf(s.t, s.start, "metrics as ServiceAccount %s bound to %s: 200, %d bytes with eventstream_operator_jetstream_request_duration_seconds",
		reader, role, len(body))
	return nil
}

// ---- 11-13: the default streams as a release of their own ----

// streamState is what must survive an upgrade: the EventStream UIDs and the
// JetStream message counts.
type streamState struct {
	uids map[string]string // resource name -> UID
	msgs map[string]uint64 // JetStream stream -> messages
}

func (s *suite) streamState(ctx context.Context) (streamState, error) {
	st := streamState{msgs: map[string]uint64{}}
	var err error
	if st.uids, err = s.uids("evs"); err != nil {
		return st, err
	}
	for _, want := range sampleStreams {
		if st.uids[want.name] == "" {
			return st, fmt.Errorf("EventStream %s/%s is missing", samplesNS, want.name)
		}
		info, err := s.streamInfo(ctx, want.stream)
		if err != nil {
			return st, fmt.Errorf("stream %s: %w", want.stream, err)
		}
		if got := info.Config.Metadata[uidKey]; got != st.uids[want.name] {
			return st, fmt.Errorf("stream %s: owner uid %q, want the EventStream's %q", want.stream, got, st.uids[want.name])
		}
		st.msgs[want.stream] = info.State.Msgs
	}
	return st, nil
}

// sameStreams checks that nothing was deleted or recreated since before:
// same UIDs, same messages, every EventStream Ready.
func (s *suite) sameStreams(ctx context.Context, before streamState, after string) error {
	if _, err := s.kubectl(90*time.Second, "wait", "--for=condition=Ready", "evs", "--all", "-n", samplesNS, "--timeout=60s"); err != nil {
		return fmt.Errorf("after %s: %w", after, err)
	}
	now, err := s.streamState(ctx)
	if err != nil {
		return fmt.Errorf("after %s: %w", after, err)
	}
	var problems []string
	for _, want := range sampleStreams {
		if b, a := before.uids[want.name], now.uids[want.name]; b != a {
			problems = append(problems, fmt.Sprintf("EventStream %s: UID %s, was %s (recreated)", want.name, a, b))
		}
		if b, a := before.msgs[want.stream], now.msgs[want.stream]; b != a {
			problems = append(problems, fmt.Sprintf("stream %s: %d messages, was %d", want.stream, a, b))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("after %s:\n%s", after, indent(strings.Join(problems, "\n")))
	}
	logf(s.t, s.start, "after %s: same 7 UIDs; AUTH_EVENTS %d, DLQ_EVENTS %d messages", after,
		now.msgs["AUTH_EVENTS"], now.msgs["DLQ_EVENTS"])
	return nil
}

// adoptIntoStreamsChart takes the seven sample EventStreams, made to look like
// the hook-created ones of the old chart (helm.sh/hook annotations, created
// outside any release), through the README's upgrade steps: helm install of
// charts/eventstream-streams with --take-ownership. The chart adopts them in
// place: same UIDs, same messages, the chart's labels and annotations.
func (s *suite) adoptIntoStreamsChart() error {
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Minute)
	defer cancel()
	// Messages in AUTH_EVENTS and in the dead-letter stream.
	for i := range 10 {
		if _, err := s.js.Publish(ctx, fmt.Sprintf("auth.e2e.upgrade.%d", i), []byte(`{"n":1}`)); err != nil {
			return err
		}
	}
	for i := range 5 {
		if _, err := s.js.Publish(ctx, fmt.Sprintf("dlq.e2e.upgrade.%d", i), []byte(`{"dead":1}`)); err != nil {
			return err
		}
	}
	before, err := s.streamState(ctx)
	if err != nil {
		return err
	}
	if before.msgs["AUTH_EVENTS"] < 10 || before.msgs["DLQ_EVENTS"] < 5 {
		return fmt.Errorf("published 10 and 5 messages, yet AUTH_EVENTS has %d, DLQ_EVENTS %d", before.msgs["AUTH_EVENTS"], before.msgs["DLQ_EVENTS"])
	}
	names := make([]string, 0, len(sampleStreams))
	for _, st := range sampleStreams {
		names = append(names, st.name)
	}
	// What the old chart's hooks left behind.
	if _, err := s.kubectl(30*time.Second, append(append([]string{"annotate", "evs", "-n", samplesNS, "--overwrite"}, names...),
		"helm.sh/hook=post-install,post-upgrade", "helm.sh/hook-weight=0", "helm.sh/hook-delete-policy=before-hook-creation")...); err != nil {
		return err
	}
	// Without ownership metadata Helm refuses to touch them.
	if out, err := s.helm(2*time.Minute, "install", streamsRelease, streamsChart, "-n", samplesNS, "--kubeconfig", s.adminKC); err == nil ||
		!strings.Contains(out, "invalid ownership metadata") {
		return fmt.Errorf("helm install over unlabelled EventStreams: want Helm's ownership error, got %v", err)
	}
	// The README's steps: drop the hook annotations, then install with
	// --take-ownership. (Helm's ownership label and annotations set by hand
	// make helm install adopt them too, but then Helm patches a custom
	// resource only by the difference between two renderings, none: the
	// chart's labels and the adopt annotation were never applied, in the
	// first version of this test. --take-ownership merges against the live
	// objects.)
	if _, err := s.kubectl(30*time.Second, append(append([]string{"annotate", "evs", "-n", samplesNS}, names...),
		"helm.sh/hook-", "helm.sh/hook-weight-", "helm.sh/hook-delete-policy-")...); err != nil {
		return err
	}
	if _, err := s.helm(2*time.Minute, "install", streamsRelease, streamsChart, "-n", samplesNS, "--kubeconfig", s.adminKC,
		"--take-ownership"); err != nil {
		return err
	}
	out, err := s.kubectlQuiet(30*time.Second, "get", "evs", "-n", samplesNS, "-o", "json")
	if err != nil {
		return err
	}
	list := &unstructured.UnstructuredList{}
	if err := list.UnmarshalJSON([]byte(out)); err != nil {
		return err
	}
	if len(list.Items) != len(sampleStreams) {
		return fmt.Errorf("%d EventStreams in %s after the install, want %d", len(list.Items), samplesNS, len(sampleStreams))
	}
	for _, o := range list.Items {
		a, l := o.GetAnnotations(), o.GetLabels()
		if a["events.giia.io/adopt"] != "true" || l["app.kubernetes.io/instance"] != streamsRelease || a["helm.sh/hook"] != "" {
			return fmt.Errorf("EventStream %s after the install: want the adopt annotation, the release label and no hook annotation; labels %v, annotations %v",
				o.GetName(), l, a)
		}
	}
	if a := list.Items[0].GetAnnotations(); a["meta.helm.sh/release-name"] != streamsRelease || list.Items[0].GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
		return fmt.Errorf("EventStream %s: no Helm ownership metadata after --take-ownership: %v", list.Items[0].GetName(), a)
	}
	return s.sameStreams(ctx, before, "helm install "+streamsRelease+" --take-ownership (adoption)")
}

// helmUpgradesKeepStreams upgrades the streams chart twice per deletion
// policy (the second time with a spec change that JetStream applies in
// place), and the operator chart once: nothing is deleted or recreated, even
// with deletionPolicy Delete.
func (s *suite) helmUpgradesKeepStreams() error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Minute)
	defer cancel()
	before, err := s.streamState(ctx)
	if err != nil {
		return err
	}
	for _, policy := range []string{"Retain", "Delete"} {
		for i, extra := range [][]string{nil, {"--set", "spec.maxAge=200h"}} {
			args := append([]string{"upgrade", streamsRelease, streamsChart, "-n", samplesNS, "--kubeconfig", s.adminKC,
				"--set", "deletionPolicy=" + policy}, extra...)
			if _, err := s.helm(2*time.Minute, args...); err != nil {
				return err
			}
			out, err := s.kubectlQuiet(30*time.Second, "get", "evs", "-n", samplesNS, "-o", `jsonpath={range .items[*]}{.spec.deletionPolicy} {end}`)
			if err != nil {
				return err
			}
			if got := strings.Fields(out); len(got) != len(sampleStreams) || slices.ContainsFunc(got, func(p string) bool { return p != policy }) {
				return fmt.Errorf("after the upgrade to deletionPolicy=%s: policies %v", policy, got)
			}
			if err := s.sameStreams(ctx, before, fmt.Sprintf("helm upgrade %d with deletionPolicy=%s", i+1, policy)); err != nil {
				return err
			}
		}
		// The spec change reached JetStream, in place.
		err := poll(ctx, 60*time.Second, 500*time.Millisecond, "maxAge 200h in AUTH_EVENTS", func() error {
			info, err := s.streamInfo(ctx, "AUTH_EVENTS")
			if err != nil {
				return err
			}
			if info.Config.MaxAge != 200*time.Hour {
				return fmt.Errorf("max age %s", info.Config.MaxAge)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if policy == "Retain" {
			if _, err := s.helm(2*time.Minute, "upgrade", release, s.chart, "-n", releaseNS, "--kubeconfig", s.adminKC,
				"--reuse-values"); err != nil {
				return err
			}
			if err := s.sameStreams(ctx, before, "helm upgrade of the operator chart"); err != nil {
				return err
			}
		}
	}
	return nil
}

// uninstallStreamsChart: back to Retain, then helm uninstall. The
// EventStreams go (the operator removes its finalizer; nothing is left
// terminating) and their JetStream streams stay, with their messages and
// without the owner marker.
func (s *suite) uninstallStreamsChart() error {
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Minute)
	defer cancel()
	if _, err := s.helm(2*time.Minute, "upgrade", streamsRelease, streamsChart, "-n", samplesNS, "--kubeconfig", s.adminKC,
		"--set", "deletionPolicy=Retain"); err != nil {
		return err
	}
	before, err := s.streamState(ctx)
	if err != nil {
		return err
	}
	if _, err := s.helm(2*time.Minute, "uninstall", streamsRelease, "-n", samplesNS, "--kubeconfig", s.adminKC,
		"--wait", "--timeout=90s"); err != nil {
		return err
	}
	err = poll(ctx, 30*time.Second, 500*time.Millisecond, "the chart's EventStreams to be gone", func() error {
		out, err := s.kubectlQuiet(30*time.Second, "get", "evs", "-n", samplesNS, "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("still there (terminating?): %s", strings.Join(strings.Fields(out), " "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, want := range sampleStreams {
		info, err := s.streamInfo(ctx, want.stream)
		if err != nil {
			return fmt.Errorf("stream %s after helm uninstall (Retain): %w", want.stream, err)
		}
		if info.State.Msgs != before.msgs[want.stream] {
			return fmt.Errorf("stream %s: %d messages after helm uninstall, %d before", want.stream, info.State.Msgs, before.msgs[want.stream])
		}
		if o, ok := info.Config.Metadata[ownerKey]; ok {
			return fmt.Errorf("stream %s still carries %s=%s after its EventStream was deleted", want.stream, ownerKey, o)
		}
	}
	logf(s.t, s.start, "helm uninstall %s: 7 EventStreams gone, 7 streams retained (AUTH_EVENTS %d, DLQ_EVENTS %d messages)",
		streamsRelease, before.msgs["AUTH_EVENTS"], before.msgs["DLQ_EVENTS"])
	return nil
}

// uninstallOperatorChart runs after the manager has stopped, with
// EventConsumers left: crds.keep (the default) keeps the CRDs, so the
// resources stay as they are; none is deleted, so none is stuck on its
// finalizer.
func (s *suite) uninstallOperatorChart() error {
	if _, err := s.helm(2*time.Minute, "uninstall", release, "-n", releaseNS, "--kubeconfig", s.adminKC, "--wait", "--timeout=90s"); err != nil {
		return err
	}
	if _, err := s.kubectl(30*time.Second, "get", "crd", "eventstreams.events.giia.io", "eventconsumers.events.giia.io"); err != nil {
		return fmt.Errorf("the CRDs after helm uninstall (crds.keep=true): %w", err)
	}
	crs, err := s.kubectlQuiet(30*time.Second, "get", "evs,evc", "-A", "-o",
		`jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name} deleting={.metadata.deletionTimestamp}{"\n"}{end}`)
	if err != nil {
		return err
	}
	if strings.TrimSpace(crs) == "" {
		return errors.New("no EventConsumers left to check (the samples' three should remain)")
	}
	for _, l := range strings.Split(strings.TrimSpace(crs), "\n") {
		if !strings.HasSuffix(l, "deleting=") {
			return fmt.Errorf("%s is being deleted after helm uninstall of the operator", l)
		}
	}
	left, err := s.helm(30*time.Second, "list", "-A", "-q", "--kubeconfig", s.adminKC)
	if err != nil {
		return err
	}
	if strings.TrimSpace(left) != "" {
		return fmt.Errorf("releases left: %s", left)
	}
	// Nothing of the release remains but the CRDs.
	for _, kind := range []string{"clusterrole", "clusterrolebinding"} {
		out, err := s.kubectlQuiet(30*time.Second, "get", kind, "-l", "app.kubernetes.io/instance="+release, "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("after helm uninstall: %s", out)
		}
	}
	logf(s.t, s.start, "helm uninstall %s: CRDs kept, %d resources left untouched, none terminating", release, len(strings.Split(strings.TrimSpace(crs), "\n")))
	return nil
}
