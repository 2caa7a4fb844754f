package collector

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sigid/pgcapacity/internal/config"
)

// craftedTable has n quiet partitions plus known worst ones: p1 the most
// live rows, p2 dead rows above its trigger, p3 vacuum lag, p4 xid age.
func craftedTable(name string, n int) (Table, TableSizes) {
	t := Table{Schema: "public", Name: name, Strategy: "hash", PartitionKey: "tenant_id"}
	ts := TableSizes{Schema: "public", Name: name}
	for i := range n {
		p := Partition{Name: fmt.Sprintf("%s_p%d", name, i), LiveRows: 100, DeadRows: 1, VacuumThreshold: 70, XIDAge: 1000}
		s := PartitionSizes{Name: p.Name, TenantIndexBytes: 8192}
		switch i {
		case 1:
			p.LiveRows = 1e6
		case 2:
			p.DeadRows = 5000
		case 3:
			p.VacuumLag = time.Hour
		case 4:
			p.XIDAge = 1e8
		case 5:
			s.TenantIndexBytes = 1 << 30
		}
		t.Partitions = append(t.Partitions, p)
		ts.Partitions = append(ts.Partitions, s)
	}
	return t, ts
}

// publishedPartitions lists the partition labels of family desc in metrics.
func publishedPartitions(t *testing.T, metrics []prometheus.Metric, desc *prometheus.Desc) []string {
	t.Helper()
	var names []string
	for _, m := range metrics {
		if m.Desc() != desc {
			continue
		}
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		for _, l := range out.GetLabel() {
			if l.GetName() == "partition" {
				names = append(names, l.GetValue())
			}
		}
	}
	sort.Strings(names)
	return names
}

func TestPartitionDetailModes(t *testing.T) {
	tests := []struct {
		name       string
		detail     Detail
		partitions int
		wantStats  []string // partitions with stats series; nil: every one
		wantSizes  []string
		wantInfo   string
	}{
		{"all", Detail{Mode: config.DetailAll, TopK: 1}, 300, nil, nil, "all/0"},
		{"none", Detail{Mode: config.DetailNone, TopK: 1}, 300, []string{}, []string{}, "none/0"},
		{"top 1: the worst on each signal", Detail{Mode: config.DetailTop, TopK: 1}, 300,
			[]string{"t_p1", "t_p2", "t_p3", "t_p4"}, []string{"t_p5"}, "top/1"},
		{"auto above the limit is top", Detail{Mode: config.DetailAuto, TopK: 1}, config.AutoAllPartitions + 1,
			[]string{"t_p1", "t_p2", "t_p3", "t_p4"}, []string{"t_p5"}, "top/1"},
		{"auto at the limit is all", Detail{Mode: config.DetailAuto, TopK: 1}, config.AutoAllPartitions, nil, nil, "all/0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table, sizes := craftedTable("t", tc.partitions)
			stats := NewStats(Selection{}, time.Minute, false).WithDetail(tc.detail)
			sm := stats.metrics(Server{}, []Table{table})
			zm := NewSizes(Selection{}, time.Minute, false).WithDetail(tc.detail).metrics([]TableSizes{sizes})
			want := func(w []string) []string {
				if w != nil {
					return w
				}
				var all []string
				for _, p := range table.Partitions {
					all = append(all, p.Name)
				}
				sort.Strings(all)
				return all
			}
			for _, d := range []*prometheus.Desc{descPartLive, descPartXIDAge, descPartVacuumLag} {
				if got := publishedPartitions(t, sm, d); strings.Join(got, ",") != strings.Join(want(tc.wantStats), ",") {
					t.Errorf("%s for %v, want %v", d, got, want(tc.wantStats))
				}
			}
			if got := publishedPartitions(t, zm, descPartTenantIndex); strings.Join(got, ",") != strings.Join(want(tc.wantSizes), ",") {
				t.Errorf("tenant index bytes for %v, want %v", got, want(tc.wantSizes))
			}
			var info []string
			for _, m := range sm {
				if m.Desc() == descDetailInfo {
					var out dto.Metric
					_ = m.Write(&out)
					info = append(info, out.GetLabel()[0].GetValue()+"/"+out.GetLabel()[1].GetValue())
				}
			}
			if len(info) != 1 || info[0] != tc.wantInfo {
				t.Errorf("pgcapacity_partition_detail_info %v, want %s", info, tc.wantInfo)
			}
		})
	}
}

// The default must keep a database of 4 × 1,024 partitions within 3,000
// series (the budget: three such databases per Mimir tenant were
// the limit before).
func TestDefaultDetailBoundsSeriesAt4096Partitions(t *testing.T) {
	cfg := config.Config{PartitionDetail: config.DetailAuto, PartitionTopK: 5}
	d := DetailFromConfig(cfg)
	var tables []Table
	var sizes []TableSizes
	for i := range 4 {
		tb, sz := craftedTable(fmt.Sprintf("t%d", i), 1024)
		// Spread the live rows so every signal's top differs from the others'.
		for j := range tb.Partitions {
			tb.Partitions[j].LiveRows = float64((j * 7919) % 1024)
			tb.Partitions[j].XIDAge = float64((j * 104729) % 1024)
		}
		tables, sizes = append(tables, tb), append(sizes, sz)
	}
	sm := NewStats(Selection{}, time.Minute, false).WithDetail(d).metrics(Server{}, tables)
	zm := NewSizes(Selection{}, time.Minute, false).WithDetail(d).metrics(sizes)
	all := NewStats(Selection{}, time.Minute, true).metrics(Server{}, tables)
	if n := len(sm) + len(zm); n > 3000 || n == 0 {
		t.Errorf("%d series at 4,096 partitions with the default detail, want at most 3,000", n)
	}
	if len(all) <= 3000 {
		t.Fatalf("the all mode gave only %d series: the crafted tables do not test the bound", len(all))
	}
}

func TestExporterSeriesCountsEveryFamily(t *testing.T) {
	r, err := renderMetrics(nil, []prometheus.Metric{
		prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, 6.5, "public", "session"),
		prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, 1.5, "public", "referral"),
		prometheus.MustNewConstMetric(descTableXIDAge, prometheus.GaugeValue, 1, "public", "referral"),
	})
	if err != nil {
		t.Fatal(err)
	}
	part, err := seriesPart(nil, []rendered{r})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := assemble(nil, []rendered{r, part})
	if err != nil {
		t.Fatal(err)
	}
	text, err := snap.Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`pgcapacity_exporter_series{family="pgcapacity_table_partition_skew_ratio"} 2`,
		`pgcapacity_exporter_series{family="pgcapacity_table_xid_age_max"} 1`,
		`pgcapacity_exporter_series{family="pgcapacity_exporter_series"} 3`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
}

// Sizes rows arrive in no order (sortSizes' comment says why); it gives
// stats' order: tables by schema and name, each one's partitions by leaf
// relname, in byte order like PostgreSQL's name.
func TestSortSizes(t *testing.T) {
	tests := []struct {
		name       string
		tables     []TableSizes
		relnames   [][]string
		wantTables []string
		wantParts  [][]string
	}{
		{
			name: "tables by schema then name, partitions by relname",
			tables: []TableSizes{
				{Schema: "public", Name: "b", Partitions: []PartitionSizes{{Name: "b_2"}, {Name: "b_10"}, {Name: "b_1"}}},
				{Schema: "audit", Name: "z", Partitions: []PartitionSizes{{Name: "z_1"}}},
				{Schema: "public", Name: "a"},
			},
			relnames:   [][]string{{"b_2", "b_10", "b_1"}, {"z_1"}, nil},
			wantTables: []string{"audit.z", "public.a", "public.b"},
			wantParts:  [][]string{{"z_1"}, nil, {"b_1", "b_10", "b_2"}},
		},
		{
			// The label may carry another schema; the order is the relname's.
			name: "partitions by relname, not by label",
			tables: []TableSizes{
				{Schema: "public", Name: "t", Partitions: []PartitionSizes{{Name: "other.t_b"}, {Name: "t_a"}, {Name: "T_c"}}},
			},
			relnames:   [][]string{{"t_b", "t_a", "T_c"}},
			wantTables: []string{"public.t"},
			wantParts:  [][]string{{"T_c", "t_a", "other.t_b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sortSizes(tt.tables, tt.relnames)
			var gotTables []string
			var gotParts [][]string
			for _, ts := range tt.tables {
				gotTables = append(gotTables, ts.Schema+"."+ts.Name)
				var parts []string
				for _, p := range ts.Partitions {
					parts = append(parts, p.Name)
				}
				gotParts = append(gotParts, parts)
			}
			if fmt.Sprint(gotTables) != fmt.Sprint(tt.wantTables) || fmt.Sprint(gotParts) != fmt.Sprint(tt.wantParts) {
				t.Errorf("got %v %v, want %v %v", gotTables, gotParts, tt.wantTables, tt.wantParts)
			}
		})
	}
}
