package deploytest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sendguard/sendguard/client"
	sgv1 "github.com/sendguard/sendguard/proto/sendguard/v1"
	"github.com/sendguard/sendguard/webhook"
)

const (
	dashboardFile  = root + "/deploy/grafana/sendguard.json"
	alertsFile     = root + "/deploy/prometheus/alerts.yaml"
	alertTestsFile = root + "/deploy/prometheus/alerts_test.yaml"
)

// targetLabels are added by Prometheus when it scrapes, so they are on no
// series of /metrics; prometheusSeries are series Prometheus makes itself.
var (
	targetLabels     = map[string]bool{"job": true, "instance": true}
	prometheusSeries = map[string]bool{"up": true}
)

// promQuery is one expression of the dashboard or the alerts, and where it is.
type promQuery struct {
	where, expr string
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": …} in newer Grafana
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	GridPos gridPos `json:"gridPos"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

type gridPos struct{ X, Y, W, H int }

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	readJSON(t, dashboardFile, &d)
	return d
}

// labelValuesQuery is Grafana's label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_]\w*)\)$`)

// dashboardQueries lists every expression of the dashboard: its panels'
// targets and its query variables (label_values read as "sum by (label)
// (selector)").
func dashboardQueries(t *testing.T, d dashboard) []promQuery {
	t.Helper()
	var out []promQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				out = append(out, promQuery{fmt.Sprintf("dashboard panel %q target %d", p.Title, i), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		m := labelValuesQuery.FindStringSubmatch(strings.TrimSpace(q))
		if m == nil {
			t.Errorf("dashboard variable %s: query %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		out = append(out, promQuery{"dashboard variable " + v.Name, fmt.Sprintf("sum by (%s) (%s)", m[2], m[1])})
	}
	return out
}

// alertRules is the rule file: every rule's expression, and the names the
// recording rules define.
func alertRules(t *testing.T) (queries []promQuery, recorded map[string]bool) {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Record string `yaml:"record"`
				Alert  string `yaml:"alert"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	recorded = map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			queries = append(queries, promQuery{fmt.Sprintf("rule %s%s in group %s", r.Record, r.Alert, g.Name), r.Expr})
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	return queries, recorded
}

// series is what /metrics exposes: for each sample name (histograms' _bucket,
// _sum and _count apart), every label set.
type series map[string][]map[string]string

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"`)

// parseExposition reads Prometheus' text format.
func parseExposition(t *testing.T, r io.Reader) series {
	t.Helper()
	out := series{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("/metrics: cannot read %q", line)
		}
		labels := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			v, err := strconv.Unquote(`"` + p[2] + `"`)
			if err != nil {
				t.Fatalf("/metrics: label value in %q: %v", line, err)
			}
			labels[p[1]] = v
		}
		out[m[1]] = append(out[m[1]], labels)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hasLabel reports whether some series of name has label (with value, unless
// value is nil).
func (s series) hasLabel(name, label string, value *string) bool {
	for _, ls := range s[name] {
		if v, ok := ls[label]; ok && (value == nil || v == *value) {
			return true
		}
	}
	return false
}

// literalAlternatives returns the values a regex matcher such as "defer|deny"
// names, or nil when it is a real pattern ("5..", ".*", "$job").
func literalAlternatives(re string) []string {
	if re == "" || strings.ContainsAny(re, `.*+?()[]{}^$\`) {
		return nil
	}
	return strings.Split(re, "|")
}

// checkQuery reports what q reads that the server does not expose: a metric,
// a label (in a matcher or a grouping clause), or a value an equality matcher
// or a list of literal alternatives names.
func checkQuery(q promQuery, exposed series, recorded map[string]bool) []string {
	parsed, err := parseQuery(q.expr)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", q.where, err)}
	}
	var problems []string
	var metrics []string
	groupingKnown := true // false when a series' labels are not /metrics' to know
	for _, s := range parsed.selectors {
		switch {
		case recorded[s.name] || prometheusSeries[s.name]:
			groupingKnown = false
			continue
		case len(exposed[s.name]) == 0:
			problems = append(problems, fmt.Sprintf("%s: metric %s is not on /metrics", q.where, s.name))
			continue
		}
		metrics = append(metrics, s.name)
		for _, m := range s.matchers {
			if targetLabels[m.label] || m.label == "__name__" {
				continue
			}
			if !exposed.hasLabel(s.name, m.label, nil) {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %s", q.where, s.name, m.label))
				continue
			}
			var values []string
			switch m.op {
			case "=":
				values = []string{m.value}
			case "=~":
				values = literalAlternatives(m.value)
			}
			for _, v := range values {
				if !exposed.hasLabel(s.name, m.label, &v) {
					problems = append(problems, fmt.Sprintf("%s: no series %s{%s=%q} (after the test's traffic)", q.where, s.name, m.label, v))
				}
			}
		}
	}
	if !groupingKnown {
		return problems // grouping over recorded series: their labels are the rules' own
	}
	for _, l := range parsed.grouping {
		if !targetLabels[l] && !slices.ContainsFunc(metrics, func(name string) bool { return exposed.hasLabel(name, l, nil) }) {
			problems = append(problems, fmt.Sprintf("%s: groups by %s, a label of none of %v", q.where, l, metrics))
		}
	}
	return problems
}

// TestDashboardAndAlertsQueryRealMetrics starts the server built by `make
// image` on loopback, gives it a little of every kind of traffic (so that the
// labelled series exist), and checks that every metric, label and label value
// the dashboard and the alerts query is on its /metrics. It also checks the
// converse for sendguard's own metrics: each is on some dashboard panel.
func TestDashboardAndAlertsQueryRealMetrics(t *testing.T) {
	exposed := liveMetrics(t)
	d := readDashboard(t)
	queries := dashboardQueries(t, d)
	rules, recorded := alertRules(t)
	if len(queries) < 30 || len(rules) < 15 {
		t.Fatalf("read only %d dashboard and %d rule expressions", len(queries), len(rules))
	}
	for _, q := range append(queries, rules...) {
		for _, p := range checkQuery(q, exposed, recorded) {
			t.Error(p)
		}
	}
	onDashboard := map[string]bool{}
	for _, q := range queries {
		parsed, _ := parseQuery(q.expr)
		for _, s := range parsed.selectors {
			onDashboard[s.name] = true
		}
	}
	for name := range exposed {
		if strings.HasPrefix(name, "sendguard_") && !onDashboard[name] {
			t.Errorf("/metrics has %s, which no dashboard panel shows: add one to deploy/grafana/sendguard.json", name)
		}
	}
}

// TestDashboardLayout checks what Grafana would silently accept: unique panel
// ids, panels inside the 24-column grid and not overlapping, every target on
// the dashboard's data source variable.
func TestDashboardLayout(t *testing.T) {
	d := readDashboard(t)
	ids := map[int]string{}
	var placed []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", p.Title, other, p.ID)
			}
			ids[p.ID] = p.Title
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
			}
			for _, o := range placed {
				h := o.GridPos
				if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
					t.Errorf("panels %q and %q overlap", p.Title, o.Title)
				}
			}
			placed = append(placed, p)
			for i, tg := range p.Targets {
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q target %d: data source %q, want the ${datasource} variable", p.Title, i, tg.Datasource.UID)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

// TestPromtool runs promtool (Debian's prometheus package) on the rules and
// their unit tests, and on every dashboard expression written as a recording
// rule (Grafana's variables replaced), so that Prometheus' own parser checks
// the dashboard's syntax too.
func TestPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "prometheus")
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("check", "rules", alertsFile)
	run("test", "rules", alertTestsFile)

	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m", "$job", ".*", "$instance", ".*")
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for i, q := range dashboardQueries(t, readDashboard(t)) {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query:%d", i), Expr: vars.Replace(q.expr)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run("check", "rules", path)
}

// liveMetrics starts the image's binary, sends it traffic of every kind the
// dashboard and alerts look at, and returns its /metrics.
func liveMetrics(t *testing.T) series {
	t.Helper()
	const secret = "deploytest-app-secret"
	s := startServer(t, "SENDGUARD_WHATSAPP_APP_SECRET="+secret)
	c, err := client.Dial(s.grpc, client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	marketing := func(business, phone string) *sgv1.CheckSendRequest {
		return &sgv1.CheckSendRequest{BusinessId: business, Phone: phone, Category: sgv1.Category_CATEGORY_MARKETING, Template: "promo"}
	}
	// ALLOW, then a reservation and the frequency cap's DEFER.
	must(c.Check(ctx, marketing("acme", "+5511987650001")))
	reserve := marketing("acme", "+5511987650003")
	reserve.Reserve, reserve.MessageRef = true, "send-1"
	must(c.Check(ctx, reserve))
	must(c.Check(ctx, marketing("acme", "+5511987650003")))
	// An opt-out reported twice (applied, then a duplicate), then its DENY.
	optOut := &sgv1.ReportResultRequest{BusinessId: "acme", Phone: "+5511987650002", MessageId: "wamid.D1",
		Status: sgv1.MessageStatus_MESSAGE_STATUS_FAILED, ErrorCode: 131050, Category: sgv1.Category_CATEGORY_MARKETING,
		Timestamp: timestamppb.New(time.Now().Add(-time.Minute))}
	must(c.Report(ctx, optOut))
	must(c.Report(ctx, optOut))
	must(c.Check(ctx, marketing("acme", "+5511987650002")))
	// A business in shadow mode: a US number's REGION_BLOCKED is only counted.
	shadow := true
	must(c.SetPolicy(ctx, &sgv1.SetPolicyRequest{BusinessId: "shadowbiz", Policy: &sgv1.Policy{Shadow: &shadow}}))
	must(c.Check(ctx, marketing("shadowbiz", "+12025550123")))
	// A stream with a good row and one without a business.
	stream, err := c.CheckStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []*sgv1.CheckSendRequest{marketing("acme", "+5511987650004"), marketing("", "+5511987650005")} {
		if err := stream.Send(row); err != nil {
			t.Fatal(err)
		}
		must(stream.Recv())
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	// Webhooks: unsigned (401), a signed status (200), a signed body of another object (skipped).
	status := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.W1","status":"sent","timestamp":"%d","recipient_id":"5511987650006"}]}}]}]}`, time.Now().Unix())
	for _, p := range []struct {
		body string
		sign bool
		want int
	}{{status, false, 401}, {status, true, 200}, {`{"object":"page","entry":[]}`, true, 200}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.http+"/webhooks/whatsapp", strings.NewReader(p.body))
		if p.sign {
			req.Header.Set("X-Hub-Signature-256", webhook.Sign([]byte(p.body), []byte(secret)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != p.want {
			t.Fatalf("webhook POST (signed %v): %d, want %d", p.sign, resp.StatusCode, p.want)
		}
	}
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return parseExposition(t, resp.Body)
}

// running is a `sendguard serve` started by startServer.
type running struct{ grpc, http string }

var servingLine = regexp.MustCompile(`sendguard serving"? grpc=(\S+) http=(\S+)`)

// startServer runs the image's binary as `sendguard serve` on loopback ports
// the kernel picks, with a fresh data directory and extra environment, and
// waits (at most 60 s) until it says where it listens. It is stopped when
// the test ends.
func startServer(t *testing.T, env ...string) running {
	t.Helper()
	cmd := exec.Command(binary(), "serve", "--data", filepath.Join(t.TempDir(), "data"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	found := make(chan running, 1)
	var log strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- running{m[1], m[2]}:
				default:
				}
			} else if log.Len() < 1<<16 {
				log.WriteString(sc.Text() + "\n")
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case r := <-found:
		return r
	case <-done:
		t.Fatalf("server exited before serving:\n%s", log.String())
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start within 60 s")
	}
	return running{}
}
