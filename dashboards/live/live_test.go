// Package live evaluates every committed dashboard against a real
// Prometheus: the pgcapacity binary serves the SigID reference schema with
// one migration swapped and one in flight, Debian's Prometheus scrapes it
// every second with the generated rules (evaluated every second, the
// business week shortened to 20 s: the test's only change to the rules),
// and every panel query and variable goes through Prometheus' HTTP API with
// Grafana's substitutions.
package live

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/dashboards/internal/lint"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
	"github.com/sigid/pgcapacity/test/harness"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

const dashboardsDir = "../json"

// settings make the exporter sample every second or two and the rules
// evaluate every second, so a minute of test holds many rounds.
var settings = []string{
	"PGCAPACITY_STATS_INTERVAL=1s",
	"PGCAPACITY_SIZES_INTERVAL=2s",
	"PGCAPACITY_PROBE_INTERVAL=1s",
	"PGCAPACITY_STATEMENTS_INTERVAL=2s",
	"PGCAPACITY_ADMINOPS_INTERVAL=2s",
	"PGCAPACITY_MIGRATIONS_INTERVAL=1s",
	"PGCAPACITY_RULE_WINDOW=20s",
	"PGCAPACITY_RULES_EVALUATION_INTERVAL=1s",
	"PGCAPACITY_LOG_LEVEL=warn",
}

// emptyByDesign are the panel queries ("<uid>/<panel title>/<refId>",
// with "[<variable>=<value>]" in a repeated row) that return nothing on
// this data, with the reason. The test fails on any other empty query, and
// on a listed one that returns data or no longer exists (take it off).
func emptyByDesign() map[string]string {
	const lastWeek = "compares with a week ago: needs a week of history"
	m := map[string]string{
		"pgcapacity-latency/p95 latency against the same time last week/B": lastWeek,
		"pgcapacity-latency/p95 change against last week/A":                lastWeek,
		"pgcapacity-migrations/Time to completion/A":                       "nothing is copying: the in-flight migration has finished its copy and replays (the panel reads \"not copying\")",
	}
	for _, table := range []string{"referral", "referral_redemption", "session", "tenant_membership", "tenant_subject_identifier"} {
		m["pgcapacity-overview/Rule 5: p95 against last week/A[table="+table+"]"] = lastWeek
	}
	return m
}

// scrapeInterval is the test Prometheus' scrape interval (harness).
const scrapeInterval = time.Second

func TestEveryPanelReturnsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dbURL := pgtest.NewDatabase(t, &cluster)
	harness.SeedSigID(ctx, t, dbURL)
	bin := harness.BuildPgcapacity(t)
	migrations(ctx, t, bin, dbURL)

	exporter := harness.FreeAddr(t)
	serve := harness.Start(t, "pgcapacity", append(slices.Clone(settings),
		"PGCAPACITY_DATABASE_URL="+dbURL, "PGCAPACITY_LISTEN_ADDRESS="+exporter), bin, "serve")
	harness.WaitHTTP(t, "http://"+exporter+"/readyz", serve)
	prom := harness.StartPrometheus(t, exporter, "", harness.Rules(t, bin, settings))
	began := time.Now()

	// Wait for enough history for every window the dashboards use at this
	// scrape interval (the longest: the 5m statements window needs two
	// statement rounds, the copy rate's deriv two samples).
	waitFor(ctx, t, prom, `count_over_time(pgcapacity_up[1m]) >= 40`)

	boards, err := lint.LoadDir(dashboardsDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(boards) != 5 {
		t.Fatalf("want the five dashboards in %s, found %d", dashboardsDir, len(boards))
	}
	now := time.Now()
	e := evaluator{t: t, prom: prom, start: began, end: now}
	empty := emptyByDesign()
	seen := map[string]bool{}
	for _, d := range boards {
		vars := e.variables(d)
		// migrate's shadow (n2_session) and retained (o1_referral) tables
		// are no watched tables: no table variable offers them, so the
		// table dashboard opens on a live table.
		for _, v := range vars {
			if v.name == "table" && (slices.Contains(v.values, "n2_session") || slices.Contains(v.values, "o1_referral")) {
				t.Errorf("%s: the table variable offers migrate's own tables: %v", d.UID, v.values)
			}
		}
		for _, pr := range panelsWithRepeat(d) {
			for _, values := range expand(vars, pr.repeat) {
				for _, tg := range pr.panel.Targets {
					key := d.UID + "/" + pr.panel.Title + "/" + tg.RefID
					if pr.repeat != "" {
						key += "[" + pr.repeat + "=" + unquote(values[pr.repeat]) + "]"
					}
					seen[key] = true
					expr := substitute(tg.Expr, values, now.Sub(began))
					got := e.query(expr, tg.Instant)
					reason, listed := empty[key]
					switch {
					case len(got) == 0 && !listed:
						t.Errorf("%s: no data for %s", key, expr)
					case len(got) > 0 && listed:
						t.Errorf("%s returns data now: take it off emptyByDesign (%s)", key, reason)
					}
				}
				if pr.panel.Merges() {
					e.checkJoinLabels(d.UID, pr.panel, values, now.Sub(began))
				}
			}
		}
	}
	for key, reason := range empty {
		if !seen[key] {
			t.Errorf("emptyByDesign lists %s (%s), which no dashboard has: remove it", key, reason)
		}
	}
}

// migrations leaves referral swapped (the old table retained for rollback)
// and session repartitioned but not swapped (a migration in flight).
func migrations(ctx context.Context, t *testing.T, bin, dbURL string) {
	t.Helper()
	who := []string{"--reason", "live dashboards test", "--requester", "alice", "--approver", "bob"}
	steps := [][]string{
		append([]string{"migrate", "start", "--table", "referral", "--partitions", "32"}, who...),
		{"migrate", "validate", "1"},
		{"migrate", "swap", "1", "--now", "live dashboards test"},
		append([]string{"migrate", "start", "--table", "session", "--partitions", "32"}, who...),
	}
	for _, args := range steps {
		harness.Run(ctx, t, bin, dbURL, args...)
	}
}

// promResult is a query answer's series: labels only.
type promResult struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
		} `json:"result"`
	} `json:"data"`
}

// waitFor polls an instant query until it returns a series.
func waitFor(ctx context.Context, t *testing.T, prom, expr string) {
	t.Helper()
	for {
		var r promResult
		harness.GetJSON(t, prom+"/api/v1/query?query="+url.QueryEscape(expr), &r)
		if len(r.Data.Result) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Prometheus never answered %s", expr)
		case <-time.After(time.Second):
		}
	}
}

type evaluator struct {
	t          *testing.T
	prom       string
	start, end time.Time
}

// query evaluates expr as Grafana would: an instant query at the end, or
// a range query over the test at a step of one scrape.
func (e evaluator) query(expr string, instant bool) []map[string]string {
	e.t.Helper()
	q := url.Values{"query": {expr}}
	path := "/api/v1/query"
	if instant {
		q.Set("time", strconv.FormatInt(e.end.Unix(), 10))
	} else {
		path = "/api/v1/query_range"
		q.Set("start", strconv.FormatInt(e.start.Unix(), 10))
		q.Set("end", strconv.FormatInt(e.end.Unix(), 10))
		q.Set("step", strconv.Itoa(int(scrapeInterval.Seconds())))
	}
	var r promResult
	harness.GetJSON(e.t, e.prom+path+"?"+q.Encode(), &r)
	out := make([]map[string]string, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		out = append(out, s.Metric)
	}
	return out
}

// variable is a dashboard variable resolved against Prometheus.
type variable struct {
	name   string
	values []string // label values the variable offers
	all    bool     // multi-value with All: substituted as its all value
	allRe  string
}

// variables resolves the dashboard's query variables in order, each with
// the ones before it substituted, as Grafana's cascade does; a variable
// that offers no value fails the test.
func (e evaluator) variables(d lint.Dashboard) []variable {
	e.t.Helper()
	var out []variable
	for _, v := range d.Templating.List {
		if v.Type == "custom" {
			// Fixed values (the role): the first is the default.
			out = append(out, variable{name: v.Name, values: strings.Split(v.QueryString(), ",")})
			continue
		}
		if v.Type != "query" {
			continue
		}
		q := substitute(v.QueryString(), current(out), e.end.Sub(e.start))
		sel, label, err := lint.ParseVariableQuery(q)
		if err != nil {
			e.t.Fatalf("%s: variable %s: %v", d.UID, v.Name, err)
		}
		var r struct {
			Data []string `json:"data"`
		}
		harness.GetJSON(e.t, e.prom+"/api/v1/label/"+label+"/values?match[]="+url.QueryEscape(sel.String()), &r)
		if len(r.Data) == 0 {
			e.t.Errorf("%s: variable %s offers no value (%s)", d.UID, v.Name, q)
			r.Data = []string{"none"}
		}
		sort.Strings(r.Data)
		out = append(out, variable{name: v.Name, values: r.Data, all: v.IncludeAll, allRe: v.AllValue})
	}
	return out
}

// current is what each variable stands for by default: All (its all
// value) for a multi-value variable, the first value for a single one.
func current(vars []variable) map[string]string {
	m := map[string]string{}
	for _, v := range vars {
		if v.all {
			m[v.name] = v.allRe
		} else {
			m[v.name] = v.values[0]
		}
	}
	return m
}

// expand lists the substitutions of one panel: one for an ordinary panel,
// one per value of the variable its row repeats over (Grafana draws the
// row once per value, each with that single value).
func expand(vars []variable, repeat string) []map[string]string {
	base := current(vars)
	if repeat == "" {
		return []map[string]string{base}
	}
	var out []map[string]string
	for _, v := range vars {
		if v.name != repeat {
			continue
		}
		for _, val := range v.values {
			m := map[string]string{}
			for k, x := range base {
				m[k] = x
			}
			m[repeat] = regexp.QuoteMeta(val)
			out = append(out, m)
		}
	}
	return out
}

// unquote undoes regexp.QuoteMeta of a repeated value, for the keys.
func unquote(re string) string {
	return regexp.MustCompile(`\\(.)`).ReplaceAllString(re, "$1")
}

// substitute replaces Grafana's variables in expr: the built-in intervals
// (at a step of one scrape, $__rate_interval is four scrapes), the
// dashboard range, and each template variable.
func substitute(expr string, values map[string]string, rng time.Duration) string {
	rateInterval := 4 * scrapeInterval
	pairs := []string{
		"$__rate_interval", fmt.Sprintf("%ds", int(rateInterval.Seconds())),
		"$__interval", fmt.Sprintf("%ds", int(scrapeInterval.Seconds())),
		"$__range", fmt.Sprintf("%ds", max(int(rng.Seconds()), 1)),
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	// Longer names first, so $table never eats the start of $tables.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		pairs = append(pairs, "${"+n+"}", values[n], "$"+n, values[n])
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}

// repeatedPanel is a panel with the variable its row repeats over.
type repeatedPanel struct {
	panel  lint.Panel
	repeat string
}

// panelsWithRepeat lists the dashboard's panels (rows left out), each
// with the repeat variable of the row it sits in, collapsed or not.
func panelsWithRepeat(d lint.Dashboard) []repeatedPanel {
	var out []repeatedPanel
	repeat := ""
	for _, p := range d.Panels {
		if p.Type == "row" {
			repeat = p.Repeat
			for _, inner := range p.Panels {
				out = append(out, repeatedPanel{inner, repeat})
			}
			continue
		}
		out = append(out, repeatedPanel{p, repeat})
	}
	return out
}

// checkJoinLabels requires every query of a merged table to return the
// same label names: Grafana joins rows only where all labels agree.
func (e evaluator) checkJoinLabels(uid string, p lint.Panel, values map[string]string, rng time.Duration) {
	e.t.Helper()
	var first []string
	var firstRef string
	for _, tg := range p.Targets {
		got := e.query(substitute(tg.Expr, values, rng), tg.Instant)
		names := map[string]bool{}
		for _, s := range got {
			for k := range s {
				names[k] = true
			}
		}
		keys := make([]string, 0, len(names))
		for k := range names {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(got) == 0 {
			continue
		}
		if first == nil {
			first, firstRef = keys, tg.RefID
		} else if !slices.Equal(first, keys) {
			e.t.Errorf("%s/%s: merged table: query %s returns labels %v, query %s %v", uid, p.Title, tg.RefID, keys, firstRef, first)
		}
	}
}
