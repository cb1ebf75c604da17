//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/giia/eventstream-operator/internal/testutil/freeport"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
)

// notReadyConsumer is an EventConsumer this step makes not Ready on purpose
// (its stream does not exist), so that the not-Ready alert has something to
// say; it is deleted at the end of the step.
const notReadyConsumer = "e2e-prometheus-not-ready"

// promQuery is one PromQL expression of the chart: a dashboard panel's query
// or an alert's expression.
type promQuery struct {
	what, expr string
	alert      bool
	panel, ref string // the dashboard panel's title and the query's refId
}

// prometheusEvaluatesDashboardAndAlerts runs the real bin/prometheus (make
// prometheus) against the manager's metrics endpoint as the chart's
// ServiceMonitor scrapes it: HTTPS, the metrics-reader ServiceAccount's bearer
// token (07b made it), the self-signed certificate not verified; every second.
// The chart's PrometheusRule groups, rendered by helm template, are loaded as
// Prometheus's rule file. Then, through the HTTP API:
//
//   - every rule is loaded and evaluates without error (/api/v1/rules health ok);
//   - every dashboard panel query, as written in the rendered ConfigMap,
//     returns at least one series;
//   - every alert expression returns at least one series with its
//     comparisons in bool mode (`x > 0` → `x > bool 0`: a 0/1 series for
//     every input series, instead of only those past the threshold), so the
//     series the alert watches exist under the names it uses; for: is not
//     waited for. The not-Ready alert must say 1 for the EventConsumer made
//     not Ready here.
//
// With E2E_PROMETHEUS_RANGE_DIR set, the panel queries' results over the step
// are also written there (one TSV per query) for hack/plot-dashboard.sh,
// which draws docs/img; E2E_PROMETHEUS_TRAFFIC (a duration) publishes events
// for that long first, so the pictures show something move.
func (s *suite) prometheusEvaluatesDashboardAndAlerts() error {
	bin := filepath.Join(s.root, "bin", "prometheus")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s is missing (make prometheus): %w", bin, err)
	}
	dashboard, alerts, groups, err := s.renderMonitoring()
	if err != nil {
		return err
	}
	dir := filepath.Join(s.work, "prometheus")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	token, err := s.kubectlQuiet(30*time.Second, "create", "token", "e2e-metrics-reader", "-n", samplesNS, "--duration=30m")
	if err != nil {
		return fmt.Errorf("a token for the metrics reader (step 07b makes it): %w", err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(strings.TrimSpace(token)), 0o600); err != nil {
		return err
	}
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, groups, 0o600); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
- job_name: eventstream-operator
  scheme: https
  metrics_path: /metrics
  authorization:
    credentials_file: %q
  tls_config:
    insecure_skip_verify: true
  static_configs:
  - targets: ["127.0.0.1:%d"]
`, rulesFile, tokenFile, s.metricsPort)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	port, err := freeport.Port()
	if err != nil {
		return err
	}
	api := fmt.Sprintf("http://127.0.0.1:%d", port)
	p, err := proc.Start("prometheus", filepath.Join(s.work, "prometheus.log"), os.Environ(), bin,
		"--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	if err != nil {
		return err
	}
	defer func() {
		killed, err := p.Stop(10 * time.Second)
		logf(s.t, s.start, "prometheus stopped (%v, killed=%t)", err, killed)
	}()
	began := time.Now()

	// The target is up and has been scraped a few times (rate, deriv and
	// histogram_quantile need at least two samples).
	err = poll(s.ctx, 60*time.Second, 500*time.Millisecond, "prometheus scraping the manager", func() error {
		if p.Exited() {
			return proc.Permanent(fmt.Errorf("prometheus exited: %v\n%s", p.ExitErr(), tail(p.Log, 20)))
		}
		res, err := promInstant(s, api, `count_over_time(up{job="eventstream-operator"}[1m]) >= 5 and up{job="eventstream-operator"} == 1`)
		if err != nil {
			return err
		}
		if len(res) == 0 {
			return errors.New("fewer than 5 successful scrapes so far")
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf(s.t, s.start, "prometheus %s scrapes https://127.0.0.1:%d/metrics with the metrics-reader token", api, s.metricsPort)

	if d := os.Getenv("E2E_PROMETHEUS_TRAFFIC"); d != "" {
		if err := s.promTraffic(d); err != nil {
			return err
		}
	}

	// One resource not Ready, on purpose.
	manifest := fmt.Sprintf("apiVersion: events.giia.io/v1alpha1\nkind: EventConsumer\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  streamRef:\n    name: no-such-stream\n", notReadyConsumer, samplesNS)
	mf := filepath.Join(dir, "not-ready.yaml")
	if err := os.WriteFile(mf, []byte(manifest), 0o600); err != nil {
		return err
	}
	if _, err := s.kubectl(30*time.Second, "apply", "-f", mf); err != nil {
		return err
	}
	defer func() {
		if _, err := s.kubectl(90*time.Second, "delete", "-f", mf, "--wait=true", "--timeout=60s"); err != nil {
			logf(s.t, s.start, "deleting %s: %v", notReadyConsumer, err)
		}
	}()

	// Prometheus loaded the chart's rules and evaluates them without error.
	err = poll(s.ctx, 30*time.Second, time.Second, "the chart's alert rules evaluated", func() error {
		return promRulesHealthy(s, api, len(alerts))
	})
	if err != nil {
		return err
	}

	queries := append(dashboard, alerts...)
	for _, q := range queries {
		expr := q.expr
		if q.alert {
			expr = boolMode(q.expr)
		}
		var res []promSample
		// Gauges appear at the next reconcile of each resource: poll.
		err := poll(s.ctx, 90*time.Second, time.Second, q.what, func() error {
			var err error
			if res, err = promInstant(s, api, expr); err != nil {
				return proc.Permanent(err)
			}
			if len(res) == 0 {
				return fmt.Errorf("%s: no series", expr)
			}
			if q.what == "alert EventResourcesNotReady" {
				for _, r := range res {
					if r.Metric["kind"] == "EventConsumer" && r.Value == 1 {
						return nil
					}
				}
				return fmt.Errorf("%s: no EventConsumer series says 1 (the not-Ready %s): %v", expr, notReadyConsumer, res)
			}
			return nil
		})
		if err != nil {
			return err
		}
		logf(s.t, s.start, "%s: %d series, e.g. %v = %g", q.what, len(res), res[0].Metric, res[0].Value)
	}

	if d := os.Getenv("E2E_PROMETHEUS_RANGE_DIR"); d != "" {
		if err := promDumpRanges(s, api, d, dashboard, began, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// renderMonitoring renders the chart with the dashboard and the
// PrometheusRule on and returns the panel queries, the alert expressions and
// the rule groups as a Prometheus rule file.
func (s *suite) renderMonitoring() (dashboard, alerts []promQuery, groups []byte, err error) {
	out, err := s.command(false, time.Minute, filepath.Join(s.root, "bin", "helm"), "template", release, s.chart,
		"-n", releaseNS, "--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true")
	if err != nil {
		return nil, nil, nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, nil, nil, fmt.Errorf("decoding helm template: %w", err)
		}
		u := &unstructured.Unstructured{Object: m}
		switch {
		case m == nil:
		case u.GetKind() == "ConfigMap" && u.GetLabels()["grafana_dashboard"] == "1":
			data, _, _ := unstructured.NestedStringMap(m, "data")
			for _, v := range data {
				var d struct {
					Panels []struct {
						Title   string `json:"title"`
						Targets []struct {
							RefID string `json:"refId"`
							Expr  string `json:"expr"`
						} `json:"targets"`
					} `json:"panels"`
				}
				if err := json.Unmarshal([]byte(v), &d); err != nil {
					return nil, nil, nil, fmt.Errorf("the dashboard JSON: %w", err)
				}
				for _, p := range d.Panels {
					for _, t := range p.Targets {
						dashboard = append(dashboard, promQuery{what: fmt.Sprintf("panel %q query %s", p.Title, t.RefID), expr: t.Expr,
							panel: p.Title, ref: t.RefID})
					}
				}
			}
		case u.GetKind() == "PrometheusRule":
			gs, _, _ := unstructured.NestedSlice(m, "spec", "groups")
			for _, g := range gs {
				rules, _ := g.(map[string]any)["rules"].([]any)
				for _, r := range rules {
					rule := r.(map[string]any)
					name, _ := rule["alert"].(string)
					expr, _ := rule["expr"].(string)
					alerts = append(alerts, promQuery{what: "alert " + name, expr: expr, alert: true})
				}
			}
			if groups, err = yaml.Marshal(map[string]any{"groups": gs}); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if len(dashboard) == 0 || len(alerts) == 0 {
		return nil, nil, nil, fmt.Errorf("helm template rendered %d panel queries and %d alerts", len(dashboard), len(alerts))
	}
	return dashboard, alerts, groups, nil
}

// boolMode rewrites every comparison outside label matchers and ranges into
// its bool form (`a > 0` → `a > bool 0`), which keeps every series and says
// 0 or 1 instead of dropping those that do not compare.
func boolMode(expr string) string {
	var b strings.Builder
	braces, brackets := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		b.WriteByte(c)
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(expr) {
				i++
				b.WriteByte(expr[i])
			} else if c == quote {
				quote = 0
			}
			continue
		case c == '"' || c == '\'' || c == '`':
			quote = c
			continue
		case c == '{':
			braces++
		case c == '}':
			braces--
		case c == '[':
			brackets++
		case c == ']':
			brackets--
		}
		if braces > 0 || brackets > 0 {
			continue
		}
		op := ""
		switch {
		case (c == '=' || c == '!' || c == '>' || c == '<') && i+1 < len(expr) && expr[i+1] == '=':
			op = string(c) + "="
		case c == '>' || c == '<':
			op = string(c)
		}
		if op == "" {
			continue
		}
		if len(op) == 2 {
			i++
			b.WriteByte(expr[i])
		}
		rest := expr[i+1:]
		switch {
		case strings.HasPrefix(strings.TrimLeft(rest, " \t\n"), "bool"):
		case rest != "" && strings.ContainsRune(" \t\n", rune(rest[0])):
			b.WriteString(" bool")
		default:
			b.WriteString(" bool ")
		}
	}
	return b.String()
}

type promSample struct {
	Metric map[string]string
	Value  float64
}

// promInstant evaluates expr now through /api/v1/query.
func promInstant(s *suite, api, expr string) ([]promSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := promGet(s, api+"/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, data.ResultType)
	}
	out := make([]promSample, 0, len(data.Result))
	for _, r := range data.Result {
		str, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, r.Value, err)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// promGet GETs a Prometheus API URL and decodes its data field.
func promGet(s *suite, u string, data any) error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("status %d: %s", resp.StatusCode, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// promRulesHealthy checks that Prometheus loaded want alerting rules and
// that each has been evaluated without error.
func promRulesHealthy(s *suite, api string, want int) error {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := promGet(s, api+"/api/v1/rules?type=alert", &data); err != nil {
		return err
	}
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if n != want {
		return fmt.Errorf("prometheus has %d alerting rules, want %d", n, want)
	}
	return nil
}

// promTraffic publishes to a sample stream for the duration d (a Go
// duration), a burst every second, so the stream and consumer panels move.
func (s *suite) promTraffic(d string) error {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return fmt.Errorf("E2E_PROMETHEUS_TRAFFIC=%q: %w", d, err)
	}
	end := time.Now().Add(dur)
	for i := 0; time.Now().Before(end); i++ {
		for j := 0; j < 20*(1+i%5); j++ {
			if _, err := s.js.Publish(s.ctx, fmt.Sprintf("analytics.e2e.prometheus.%d", j%4), []byte(`{"n":1}`)); err != nil {
				return err
			}
		}
		time.Sleep(time.Second)
	}
	return nil
}

// promDumpRanges writes each panel query's result from..to (1s steps) into
// dir, one file per query, <panel-slug>.<refId>.tsv: a header comment with
// the panel and the query, then a block per series (blocks separated by two
// blank lines, as gnuplot's index wants) whose first line names the series
// (its label values; prefixed with the refId when the panel has several
// queries) and whose lines are "seconds-since-from<TAB>value".
func promDumpRanges(s *suite, api, dir string, queries []promQuery, from, to time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	perPanel := map[string]int{}
	for _, q := range queries {
		perPanel[q.panel]++
	}
	for _, q := range queries {
		var data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		}
		u := fmt.Sprintf("%s/api/v1/query_range?query=%s&start=%d&end=%d&step=1", api, url.QueryEscape(q.expr), from.Unix(), to.Unix())
		if err := promGet(s, u, &data); err != nil {
			return fmt.Errorf("query_range %s: %w", q.expr, err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# %s\n# %s\n", q.what, strings.ReplaceAll(q.expr, "\n", " "))
		for i, r := range data.Result {
			if i > 0 {
				b.WriteString("\n\n")
			}
			keys := make([]string, 0, len(r.Metric))
			for k := range r.Metric {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			vals := make([]string, 0, len(keys))
			for _, k := range keys {
				vals = append(vals, r.Metric[k])
			}
			legend := strings.Join(vals, "/")
			if perPanel[q.panel] > 1 || legend == "" {
				legend = strings.TrimSpace(q.ref + " " + legend)
			}
			fmt.Fprintf(&b, "seconds\t%q\n", legend)
			for _, v := range r.Values {
				ts, _ := v[0].(float64)
				fmt.Fprintf(&b, "%.0f\t%v\n", ts-float64(from.Unix()), v[1])
			}
		}
		slug := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(q.panel), "-"), "-")
		if err := os.WriteFile(filepath.Join(dir, slug+"."+q.ref+".tsv"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
