package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/sink"
	"go.yaml.in/yaml/v3"
)

// metricLabels is the metrics contract the services implement (internal/metrics): the
// series the rules and dashboards may use, with their labels.
var metricLabels = map[string][]string{
	"studio_jobs_total":                    {"task", "model", "version", "outcome"},
	"studio_stage_duration_seconds":        {"stage", "task"},
	"studio_http_request_duration_seconds": {"route", "method", "status"},
	"studio_queue_depth":                   {"stage", "tier"},
	"studio_dlq_messages_total":            {"stage"},
	"studio_inference_seconds":             {"model", "version", "device"},
	"studio_batch_size":                    {"model"},
	"studio_consumer_lag":                  {"stage", "tier"},
	"studio_stage_retries_total":           {"stage"},
	"studio_model_load_seconds":            {"model", "version"},
	"studio_blob_op_seconds":               {"backend", "op"},
}

// Labels every scraped series has (target labels) or histograms add.
var targetLabels = []string{"job", "instance", "service", "le", "alertname", "alertstate", "severity"}

var (
	metricRE  = regexp.MustCompile(`\bstudio_[a-z0-9_]+`)
	byRE      = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcherRE = regexp.MustCompile(`([a-z_]+)\s*(?:=~|!~|!=|=)\s*"`)
)

// checkPromQL reports metrics outside the contract and labels the metrics do not have.
func checkPromQL(expr string) []string {
	var out []string
	allowed := slices.Clone(targetLabels)
	for _, m := range metricRE.FindAllString(expr, -1) {
		base := m
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(m, suf); ok && metricLabels[b] != nil {
				base = b
			}
		}
		labels, ok := metricLabels[base]
		if !ok {
			out = append(out, fmt.Sprintf("metric %s is not in the metrics contract", m))
			continue
		}
		allowed = append(allowed, labels...)
	}
	var used []string
	for _, g := range byRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			used = append(used, strings.TrimSpace(l))
		}
	}
	for _, g := range matcherRE.FindAllStringSubmatch(expr, -1) {
		used = append(used, g[1])
	}
	for _, l := range used {
		if l != "" && !slices.Contains(allowed, l) {
			out = append(out, fmt.Sprintf("label %q is not a label of the metrics used", l))
		}
	}
	return out
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func TestAlertRules(t *testing.T) {
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/rules/studio.yml"), &f); err != nil {
		t.Fatal(err)
	}
	rules := map[string]alertRule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r
			if !slices.Contains([]string{"critical", "high", "medium"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical, high or medium", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: annotation %s is empty", r.Alert, a)
				}
			}
			for _, e := range checkPromQL(r.Expr) {
				t.Errorf("%s: %s", r.Alert, e)
			}
		}
	}
	for _, tt := range []struct {
		alert, severity, metric, threshold, forDur string
	}{
		{"StudioJobErrorRateHigh", "critical", "studio_jobs_total", "> 0.05", "5m"},
		{"StudioStageLatencyHigh", "high", "studio_stage_duration_seconds_bucket", "> 5", ""},
		{"StudioAPILatencyHigh", "high", "studio_http_request_duration_seconds_bucket", "> 5", ""},
		{"StudioQueueDeep", "medium", "studio_queue_depth", "> 1000", ""},
		{"StudioDLQGrowing", "", "studio_dlq_messages_total", "> 0", ""},
		{"StudioTargetDown", "", "up", "== 0", ""},
	} {
		r, ok := rules[tt.alert]
		switch {
		case !ok:
			t.Errorf("alert %s is missing", tt.alert)
		case tt.severity != "" && r.Labels["severity"] != tt.severity:
			t.Errorf("%s: severity %s, want %s", tt.alert, r.Labels["severity"], tt.severity)
		case !strings.Contains(r.Expr, tt.metric) || !strings.Contains(r.Expr, tt.threshold):
			t.Errorf("%s: expr %q does not compare %s %s", tt.alert, r.Expr, tt.metric, tt.threshold)
		case tt.forDur != "" && r.For != tt.forDur:
			t.Errorf("%s: for %q, want %s", tt.alert, r.For, tt.forDur)
		}
	}

	promtool := lookTool("PROMTOOL", "promtool")
	if promtool == "" {
		t.Log("promtool not found: rule syntax and unit tests not run (scripts/validate-deploy.sh installs it)")
		return
	}
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "rules/studio.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "tests/studio.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type dashboard struct {
	file  string
	UID   string           `json:"uid"`
	Title string           `json:"title"`
	Tags  []string         `json:"tags"`
	Panel []map[string]any `json:"panels"`
	Tmpl  struct {
		List []map[string]any `json:"list"`
	} `json:"templating"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if len(files) < 4 {
		t.Fatalf("%d dashboards, want overview, API, pipeline and business", len(files))
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

// targets returns every query of a dashboard with its datasource uid.
func (d dashboard) targets() (out []map[string]any) {
	for _, p := range d.Panel {
		for _, tg := range list(p, "targets") {
			m := tg.(map[string]any)
			if str(m, "datasource", "uid") == "" {
				m["datasource"] = p["datasource"]
			}
			out = append(out, m)
		}
	}
	return out
}

// grafanaVars replaces Grafana variables with what they expand to at run time.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", `"$route"`, `".*"`, `"$stage"`, `".*"`, `"$tier"`, `".*"`)

func TestDashboards(t *testing.T) {
	var ds struct {
		Datasources []struct {
			UID      string         `yaml:"uid"`
			Type     string         `yaml:"type"`
			URL      string         `yaml:"url"`
			JSONData map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/grafana/provisioning/datasources/datasources.yaml"), &ds); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
	}
	if types["prometheus"] != "prometheus" || types["clickhouse"] != "grafana-clickhouse-datasource" {
		t.Fatalf("provisioned datasources %v: want uid prometheus (prometheus) and uid clickhouse (grafana-clickhouse-datasource)", types)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/grafana/provisioning/dashboards/dashboards.yaml"), &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || !strings.Contains(string(readFile(t, "compose.yaml")), "./deploy/grafana/dashboards:"+prov.Providers[0].Options.Path) {
		t.Errorf("the dashboard provider path is not where compose.yaml mounts deploy/grafana/dashboards")
	}

	dashboards := loadDashboards(t)
	uids := map[string]string{}
	var promExprs []string
	var sql []string
	for _, d := range dashboards {
		if d.UID == "" || d.Title == "" || !slices.Contains(d.Tags, "creativeai-studio") {
			t.Errorf("%s: needs uid, title and the creativeai-studio tag", d.file)
		}
		if prev, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share uid %s", prev, d.file, d.UID)
		}
		uids[d.UID] = d.file
		for _, tg := range d.targets() {
			uid := str(tg, "datasource", "uid")
			switch types[uid] {
			case "prometheus":
				expr := str(tg, "expr")
				for _, e := range checkPromQL(expr) {
					t.Errorf("%s: %s in %s", d.file, e, expr)
				}
				promExprs = append(promExprs, grafanaVars.Replace(expr))
			case "grafana-clickhouse-datasource":
				if str(tg, "editorType") != "sql" || str(tg, "rawSql") == "" {
					t.Errorf("%s: ClickHouse query without SQL: %v", d.file, tg)
				}
				sql = append(sql, str(tg, "rawSql"))
			default:
				t.Errorf("%s: query on unknown datasource uid %q", d.file, uid)
			}
		}
		for _, v := range d.Tmpl.List {
			if str(v, "datasource", "uid") == "clickhouse" {
				sql = append(sql, str(v, "query"))
			}
		}
	}
	if len(sql) == 0 {
		t.Error("no dashboard queries ClickHouse (the business dashboard)")
	}

	t.Run("PromQL parses", func(t *testing.T) {
		promtool := lookTool("PROMTOOL", "promtool")
		if promtool == "" {
			t.Skip("promtool not found (scripts/validate-deploy.sh installs it)")
		}
		// promtool has no expression checker; recording rules get a full parse.
		var rules []map[string]string
		for i, e := range promExprs {
			rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:expr_%d", i), "expr": e})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "dashboards.yml")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
			t.Errorf("dashboard PromQL: %v\n%s", err, out)
		}
	})

	t.Run("business SQL runs on ClickHouse", func(t *testing.T) {
		runClickHouseQueries(t, sql)
	})
}

// expandClickHouseMacros does what grafana-clickhouse-datasource (pkg/macros) and
// Grafana do to a query before sending it.
func expandClickHouseMacros(sql, database string, tenants []string) string {
	sql = strings.ReplaceAll(sql, "${database}", database)
	sql = regexp.MustCompile(`\$__timeFilter\((\w+)\)`).ReplaceAllString(sql, "$1 >= toDateTime(1700000000) AND $1 <= toDateTime(1900000000)")
	sql = strings.ReplaceAll(sql, "$__interval_s", "60")
	quoted := "''"
	if len(tenants) > 0 {
		quoted = "'" + strings.Join(tenants, "','") + "'"
	}
	sql = strings.ReplaceAll(sql, "${tenant:singlequote}", quoted)
	return strings.ReplaceAll(sql, "${tenant:csv}", strings.Join(tenants, ","))
}

// runClickHouseQueries runs each dashboard query against the ClickHouse server at
// STUDIO_TEST_CLICKHOUSE_ADDR (host:port of the native protocol, as scripts/clickhouse.sh
// exports it) with clickhouse-client, on a throwaway database built by the sink's own
// migrations (sink/migrations) and holding a few rows.
func runClickHouseQueries(t *testing.T, queries []string) {
	addr := os.Getenv("STUDIO_TEST_CLICKHOUSE_ADDR")
	client := lookTool("CLICKHOUSE_CLIENT", "clickhouse-client")
	if addr == "" || client == "" {
		t.Skip("set STUDIO_TEST_CLICKHOUSE_ADDR (native host:port, e.g. from scripts/clickhouse.sh) and install clickhouse-client to run the business SQL")
	}
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("STUDIO_TEST_CLICKHOUSE_ADDR=%q: want host:port", addr)
	}
	base := []string{"--host", host, "--port", port}
	if u := os.Getenv("STUDIO_TEST_CLICKHOUSE_USER"); u != "" {
		base = append(base, "--user", u, "--password", os.Getenv("STUDIO_TEST_CLICKHOUSE_PASSWORD"))
	}
	run := func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command(client, append(slices.Clone(base), args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	db := fmt.Sprintf("studio_deploy_test_%d", time.Now().UnixNano())
	if out, err := run(nil, "--query", "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = run(nil, "--query", "DROP DATABASE IF EXISTS "+db) })
	// The sink's own migrations, with its own version gate: a migration that needs a
	// newer ClickHouse than this server is skipped, as `studio migrate` skips it.
	migrations, err := sink.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migrations) == 0 {
		t.Skip("no sink migrations to build the tables from")
	}
	version, err := run(nil, "--query", "SELECT version()")
	if err != nil {
		t.Fatalf("server version: %v\n%s", err, version)
	}
	for _, m := range migrations {
		if !m.RunsOn(strings.TrimSpace(version)) {
			continue
		}
		sql := strings.Join(m.Statements, ";\n") + ";"
		if out, err := run([]byte(sql), "--multiquery", "--database", db); err != nil {
			t.Fatalf("migration %04d_%s: %v\n%s", m.Version, m.Name, err, out)
		}
	}
	for table, rows := range map[string]string{
		"jobs": `{"job_id":"j1","tenant":"acme","tier":"premium","task":"remove-background","model":"isnet","model_version":"small","status":"succeeded","submitted_at":"2024-01-01 00:00:00","finished_at":"2024-01-01 00:00:09","queue_wait_ms":120,"inference_ms":850,"output_bytes":1000}
{"job_id":"j2","tenant":"globex","tier":"free","task":"upscale","model":"realesrgan","model_version":"general-x4v3","status":"failed","error_stage":"preprocess","error_code":"undecodable","error_message":"undecodable image","submitted_at":"2024-01-01 00:01:00"}
`,
		"stage_runs": `{"run_id":"j1:inference:1:ok","job_id":"j1","tenant":"acme","stage":"inference","outcome":"ok","started_at":"2024-01-01 00:00:01","duration_ms":850}
`,
		"feedback": `{"id":"f1","job_id":"j1","tenant":"acme","user_id":"u1","rating":1,"model":"isnet","model_version":"small","event_time":"2024-01-01 00:05:00"}
`,
	} {
		if out, err := run([]byte(rows), "--query", fmt.Sprintf("INSERT INTO %s.%s FORMAT JSONEachRow", db, table)); err != nil {
			t.Fatalf("insert into %s: %v\n%s", table, err, out)
		}
	}
	for _, q := range queries {
		for _, tenants := range [][]string{nil, {"acme", "globex"}} {
			sql := expandClickHouseMacros(q, db, tenants)
			if out, err := run(nil, "--query", sql); err != nil {
				t.Errorf("%s\n-> %v\n%s", sql, err, out)
			}
		}
	}
}

// TestMetricsContract checks metricLabels against the collectors internal/metrics
// registers (read from its source, so that a package elsewhere that does not compile
// does not hide the answer): a rule or panel on a renamed series would silently show
// nothing.
func TestMetricsContract(t *testing.T) {
	src := filepath.Join(repoRoot(t), "internal", "metrics", "metrics.go")
	f, err := parser.ParseFile(token.NewFileSet(), src, nil, 0)
	if err != nil {
		t.Skipf("internal/metrics not readable: %v", err)
	}
	registered := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		opts, ok1 := call.Args[0].(*ast.CompositeLit)
		labels, ok2 := call.Args[1].(*ast.CompositeLit)
		if !ok1 || !ok2 {
			return true
		}
		var name string
		for _, e := range opts.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok && fmt.Sprint(kv.Key) == "Name" {
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					name, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		if name == "" {
			return true
		}
		var ls []string
		for _, e := range labels.Elts {
			if lit, ok := e.(*ast.BasicLit); ok {
				l, _ := strconv.Unquote(lit.Value)
				ls = append(ls, l)
			}
		}
		registered[name] = ls
		return true
	})
	if len(registered) == 0 {
		t.Skip("found no collectors in internal/metrics/metrics.go; update this test")
	}
	for name, labels := range metricLabels {
		got, ok := registered[name]
		switch {
		case !ok:
			t.Errorf("%s is used by rules or dashboards but internal/metrics does not register it", name)
		case !slices.Equal(got, labels):
			t.Errorf("%s: internal/metrics labels %q, rules and dashboards assume %q", name, got, labels)
		}
	}
}
