package rules

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

const alertmanagerConfig = "../deploy/alertmanager/alertmanager.yml"

// Receivers of deploy/alertmanager/alertmanager.yml.
const (
	receiverPager    = "oncall-pager"
	receiverTicket   = "ticket"
	receiverPlanning = "release-planning"
	receiverSecurity = "security-operations"
)

// intendedReceiver is the routing the alert contract asks for.
func intendedReceiver(severity, category string) string {
	switch {
	case severity == SeverityCritical:
		return receiverPager
	case category == CategoryAdminops:
		return receiverSecurity
	case category == CategoryCapacityPlanning:
		return receiverPlanning
	case severity == SeverityInfo:
		return receiverPlanning
	}
	return receiverTicket
}

func loadAlertmanager(t *testing.T) (*config.Config, *dispatch.Route) {
	t.Helper()
	cfg, err := config.LoadFile(alertmanagerConfig)
	if err != nil {
		t.Fatalf("loading %s: %v", alertmanagerConfig, err)
	}
	return cfg, dispatch.NewRoute(cfg.Route, nil)
}

// routed returns the receivers Alertmanager's own route matching picks.
func routed(route *dispatch.Route, lset model.LabelSet) ([]string, []*dispatch.Route) {
	matched := route.Match(lset)
	var names []string
	for _, r := range matched {
		names = append(names, r.RouteOpts.Receiver)
	}
	return names, matched
}

func labelSet(kv ...string) model.LabelSet {
	ls := model.LabelSet{}
	for i := 0; i+1 < len(kv); i += 2 {
		ls[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
	}
	return ls
}

// routingTable is shared with amtool's check in TestAlertmanagerConfigWithAmtool.
var routingTable = []struct {
	labels []string
	want   string
}{
	{[]string{"alertname", "TransactionIDWraparoundApproaching", "severity", "critical", "category", "autovacuum", "schema", "public", "table", "session"}, receiverPager},
	{[]string{"alertname", "AdminopsAdminsWithoutMFA", "severity", "warning", "category", "admin-ops", "check", "admins_without_mfa"}, receiverSecurity},
	{[]string{"alertname", "PartitionSkewHigh", "severity", "info", "category", "capacity-planning", "schema", "public", "table", "session"}, receiverPlanning},
	{[]string{"alertname", "PgcapacityExporterDown", "severity", "warning", "category", "exporter"}, receiverTicket},
	{[]string{"alertname", "HotPartitionVacuumLagHigh", "severity", "warning", "category", "autovacuum"}, receiverTicket},
	{[]string{"alertname", "MigrationOldTableRetained", "severity", "info", "category", "migration", "id", "m1"}, receiverPlanning},
	// A critical admin-ops alert still pages; unlabelled alerts make a ticket.
	{[]string{"alertname", "Future", "severity", "critical", "category", "admin-ops"}, receiverPager},
	{[]string{"alertname", "Unlabelled"}, receiverTicket},
	{[]string{"alertname", "Latency", "severity", "warning", "category", "latency"}, receiverTicket},
}

func TestAlertmanagerRouting(t *testing.T) {
	_, route := loadAlertmanager(t)
	for _, tc := range routingTable {
		got, _ := routed(route, labelSet(tc.labels...))
		if !slices.Equal(got, []string{tc.want}) {
			t.Errorf("%v: routed to %v, want [%s]", tc.labels, got, tc.want)
		}
	}
}

// Every alert the generator writes reaches the receiver its severity and
// category call for, grouped by table.
func TestAlertmanagerRoutesEveryAlert(t *testing.T) {
	_, route := loadAlertmanager(t)
	for _, a := range generate(t, nil).Alerts() {
		lset := model.LabelSet{"alertname": model.LabelValue(a.Alert), "job": "pgcapacity", "instance": "db1:9842", "schema": "public", "table": "session"}
		for k, v := range a.Labels {
			lset[model.LabelName(k)] = model.LabelValue(v)
		}
		got, matched := routed(route, lset)
		want := intendedReceiver(a.Labels["severity"], a.Labels["category"])
		if !slices.Equal(got, []string{want}) {
			t.Errorf("%s (%s, %s): routed to %v, want [%s]", a.Alert, a.Labels["severity"], a.Labels["category"], got, want)
			continue
		}
		groupBy := matched[0].RouteOpts.GroupBy
		keys := []model.LabelName{"instance", "schema", "table"}
		if a.Labels["category"] == CategoryAdminops {
			keys = []model.LabelName{"instance", "alertname"}
		}
		for _, k := range keys {
			if _, ok := groupBy[k]; !ok {
				t.Errorf("%s: grouped by %v, which lacks %s", a.Alert, slices.Sorted(maps.Keys(groupBy)), k)
			}
		}
	}
}

// While an instance's exporter is down its other alerts are inhibited, and
// only that instance's.
func TestAlertmanagerInhibition(t *testing.T) {
	cfg, _ := loadAlertmanager(t)
	inhibits := func(source, target model.LabelSet) bool {
		for _, r := range cfg.InhibitRules {
			if !labels.Matchers(r.SourceMatchers).Matches(source) || !labels.Matchers(r.TargetMatchers).Matches(target) {
				continue
			}
			equal := true
			for _, l := range r.Equal {
				equal = equal && source[model.LabelName(l)] == target[model.LabelName(l)]
			}
			if equal {
				return true
			}
		}
		return false
	}
	down := labelSet("alertname", "PgcapacityExporterDown", "severity", "warning", "category", "exporter", "job", "pgcapacity", "instance", "db1:9842")
	unreachable := labelSet("alertname", "PgcapacityDatabaseUnreachable", "severity", "warning", "category", "exporter", "job", "pgcapacity", "instance", "db1:9842")
	for _, a := range generate(t, nil).Alerts() {
		target := labelSet("alertname", a.Alert, "job", "pgcapacity", "instance", "db1:9842", "schema", "public", "table", "session")
		for k, v := range a.Labels {
			target[model.LabelName(k)] = model.LabelValue(v)
		}
		if want := a.Alert != "PgcapacityExporterDown"; inhibits(down, target) != want {
			t.Errorf("exporter down inhibits %s: %v, want %v", a.Alert, !want, want)
		}
		other := maps.Clone(target)
		other["instance"] = "db2:9842"
		if inhibits(down, other) {
			t.Errorf("exporter down on db1 inhibits %s on db2", a.Alert)
		}
		want := strings.HasSuffix(a.Alert, "CheckFailing") || a.Alert == "PgcapacityCollectorFailing"
		if got := inhibits(unreachable, target); got != want {
			t.Errorf("database unreachable inhibits %s: %v, want %v", a.Alert, got, want)
		}
	}
}

// Debian's Alertmanager 0.25, which the end-to-end test and many installs
// run, accepts the configuration and routes the table the same way.
func TestAlertmanagerConfigWithAmtool(t *testing.T) {
	if out, err := runTool(t, ".", "amtool", "check-config", alertmanagerConfig); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for _, tc := range routingTable {
		args := []string{"config", "routes", "test", "--config.file=" + alertmanagerConfig}
		for i := 0; i+1 < len(tc.labels); i += 2 {
			args = append(args, tc.labels[i]+"="+tc.labels[i+1])
		}
		out, err := runTool(t, ".", "amtool", args...)
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s", args, err, out)
		}
		// amtool prints the receivers on stdout and warnings about flags on stderr.
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if line != "" && !strings.HasPrefix(line, "Warning:") {
				got = append(got, line)
			}
		}
		if !slices.Equal(got, []string{tc.want}) {
			t.Errorf("amtool routes %v to %q, want %s", tc.labels, got, tc.want)
		}
	}
}
