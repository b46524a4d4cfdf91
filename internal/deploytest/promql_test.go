package deploytest

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// This file reads what a PromQL expression queries: its metric names, their
// label matchers, and the labels its grouping clauses name. It is not a PromQL
// parser: promtool (CI) checks the syntax of every expression with Prometheus'
// own parser. github.com/prometheus/prometheus/promql/parser would do both, but
// its module brings Kubernetes' client and a hundred other modules into
// go.mod for a test; a tokenizer that knows where names can stand is about a
// hundred lines and is tested below on the constructs the dashboard and the
// alerts use.

// selector is one vector selector: a metric name and its label matchers.
type selector struct {
	name     string
	matchers []matcher
}

type matcher struct{ label, op, value string }

// query is what one expression reads.
type query struct {
	selectors []selector
	// grouping are the labels named by by, without, on, ignoring, group_left
	// and group_right.
	grouping []string
}

// aggregators may stand before by/without, so they are names of operations
// even when no parenthesis follows them at once.
var aggregators = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// keywords are identifiers that are never metric names.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

// groupingKeywords are followed by a list of label names.
var groupingKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

type tokenKind int

const (
	tEOF tokenKind = iota
	tIdent
	tString
	tNumber
	tVariable // a Grafana variable outside a string: $job, ${job}, $__rate_interval
	tPunct
)

type token struct {
	kind tokenKind
	text string // for strings, the unquoted value
}

// tokenize splits a PromQL expression into tokens.
func tokenize(s string) ([]token, error) {
	var out []token
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			raw := s[i : j+1]
			if c == '\'' { // strconv reads single quotes as a rune
				raw = `"` + strings.ReplaceAll(s[i+1:j], `"`, `\"`) + `"`
			}
			v, err := strconv.Unquote(raw)
			if err != nil {
				return nil, fmt.Errorf("string at %d: %v", i, err)
			}
			out = append(out, token{tString, v})
			i = j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// Numbers, hex and durations: 0.99, 0x1f, 5m, 1h30m, 1e3.
			j := i + 1
			for j < len(s) && (isIdent(s[j]) && s[j] != ':' || s[j] == '.') {
				j++
			}
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case c == '$':
			j := i + 1
			if j < len(s) && s[j] == '{' {
				for j < len(s) && s[j] != '}' {
					j++
				}
				j++
			} else {
				for j < len(s) && isIdent(s[j]) && s[j] != ':' {
					j++
				}
			}
			out = append(out, token{tVariable, s[i:min(j, len(s))]})
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			out = append(out, token{tIdent, s[i:j]})
			i = j
		default:
			if i+1 < len(s) {
				if two := s[i : i+2]; two == "=~" || two == "!~" || two == "!=" || two == "==" || two == ">=" || two == "<=" {
					out = append(out, token{tPunct, two})
					i += 2
					continue
				}
			}
			out = append(out, token{tPunct, string(c)})
			i++
		}
	}
	return append(out, token{kind: tEOF}), nil
}

// parseQuery reads what expr queries.
func parseQuery(expr string) (query, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return query{}, err
	}
	var q query
	for i := 0; toks[i].kind != tEOF; i++ {
		t := toks[i]
		switch {
		case t.kind == tIdent && groupingKeywords[t.text]:
			if toks[i+1].text != "(" {
				continue // group_left without labels
			}
			for i += 2; toks[i].text != ")"; i++ {
				switch toks[i].kind {
				case tIdent, tString:
					q.grouping = append(q.grouping, toks[i].text)
				case tEOF:
					return q, fmt.Errorf("unclosed %s (", t.text)
				}
			}
		case t.kind == tIdent && (keywords[strings.ToLower(t.text)] || aggregators[t.text] || toks[i+1].text == "("):
			// An operator, a function or an aggregation.
		case t.kind == tIdent:
			sel := selector{name: t.text}
			if toks[i+1].text == "{" {
				if sel.matchers, i, err = parseMatchers(toks, i+1); err != nil {
					return q, err
				}
			}
			q.selectors = append(q.selectors, sel)
		case t.text == "{":
			var sel selector
			if sel.matchers, i, err = parseMatchers(toks, i); err != nil {
				return q, err
			}
			for _, m := range sel.matchers {
				if m.label == "__name__" && m.op == "=" {
					sel.name = m.value
				}
			}
			if sel.name == "" {
				return q, fmt.Errorf("a selector without a metric name: %v", sel.matchers)
			}
			q.selectors = append(q.selectors, sel)
		case t.text == "[": // a range or subquery: durations only
			for toks[i].text != "]" {
				if toks[i].kind == tEOF {
					return q, fmt.Errorf("unclosed [")
				}
				i++
			}
		}
	}
	return q, nil
}

// parseMatchers reads {label op "value", …} from toks[i] ("{") and returns the
// matchers and the index of the closing "}".
func parseMatchers(toks []token, i int) ([]matcher, int, error) {
	var ms []matcher
	for i++; toks[i].text != "}"; i++ {
		if toks[i].text == "," {
			continue
		}
		if i+2 >= len(toks) {
			return nil, i, fmt.Errorf("unclosed {")
		}
		label, op, value := toks[i], toks[i+1], toks[i+2]
		if label.kind != tIdent && label.kind != tString || value.kind != tString ||
			op.text != "=" && op.text != "!=" && op.text != "=~" && op.text != "!~" {
			return nil, i, fmt.Errorf("bad label matcher at %q %q %q", label.text, op.text, value.text)
		}
		ms = append(ms, matcher{label.text, op.text, value.text})
		i += 2
	}
	return ms, i, nil
}

func TestParseQuery(t *testing.T) {
	sel := func(name string, ms ...matcher) selector { return selector{name: name, matchers: ms} }
	for _, c := range []struct {
		expr string
		want query
	}{
		{`sum by (verdict) (rate(sendguard_decisions_total{job=~"$job", shadow="false"}[$__rate_interval]))`,
			query{[]selector{sel("sendguard_decisions_total", matcher{"job", "=~", "$job"}, matcher{"shadow", "=", "false"})}, []string{"verdict"}}},
		{`histogram_quantile(0.99, sum by (le, grpc_method) (rate(x_bucket{a='b"c'}[5m])))`,
			query{[]selector{sel("x_bucket", matcher{"a", "=", `b"c`})}, []string{"le", "grpc_method"}}},
		{"predict_linear(a[6h], 24 * 3600) < b\nand c == 1 # a comment naming d",
			query{[]selector{sel("a"), sel("b"), sel("c")}, nil}},
		{`rate(a[5m] offset 1h) > bool 0.5e3`, query{[]selector{sel("a")}, nil}},
		{`{__name__="up", job!~"x|y",}`, query{[]selector{sel("up", matcher{"__name__", "=", "up"}, matcher{"job", "!~", "x|y"})}, nil}},
		{`sendguard:check_errors:ratio_rate1h > (14.4 * 0.001)`, query{[]selector{sel("sendguard:check_errors:ratio_rate1h")}, nil}},
		{`max_over_time(a[1h:5m]) - time()`, query{[]selector{sel("a")}, nil}},
		{`sum without (instance) (a) / on (job) group_left (b) c * ignoring(d) group_right e`,
			query{[]selector{sel("a"), sel("c"), sel("e")}, []string{"instance", "job", "b", "d"}}},
		{`label_replace(a, "x", "$1", "y", "(.*){2}") or count(f) by (job) unless NaN`,
			query{[]selector{sel("a"), sel("f")}, []string{"job"}}},
		{"1 - (a{l=`raw\\`} / ${var} b)", query{[]selector{sel("a", matcher{"l", "=", `raw\`}), sel("b")}, nil}},
	} {
		got, err := parseQuery(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{`a{b="c}`, `{job="x"}`, `a{b~"c"}`, `sum by (a`, `rate(a[5m)`} {
		if q, err := parseQuery(bad); err == nil {
			t.Errorf("%s: no error (%+v)", bad, q)
		}
	}
}

// metricName is what a selector's name must look like.
var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func FuzzParseQuery(f *testing.F) {
	f.Add(`sum by (verdict) (rate(sendguard_decisions_total{job=~"$job", shadow="false"}[$__rate_interval]))`)
	f.Add(`{__name__="up"} or a[1h:5m] offset 5m`)
	f.Fuzz(func(t *testing.T, expr string) {
		q, err := parseQuery(expr)
		if err != nil {
			return
		}
		for _, s := range q.selectors {
			if !metricName.MatchString(s.name) && !strings.Contains(expr, `__name__`) {
				t.Errorf("%q: selector name %q", expr, s.name)
			}
		}
	})
}
