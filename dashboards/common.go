package dashboards

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasource is the templated Prometheus every panel, query and query
// variable reads, so one dashboard serves any Prometheus the operator picks.
var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}

// Matchers every selector carries, so the cluster, job and instance
// variables narrow every panel. With "All" they are `.+`.
const (
	inCluster  = `cluster=~"$cluster"`
	inJob      = `job=~"$job"`
	inInstance = `instance=~"$instance"`
	inSchemas  = `schema=~"$schema"`
	inTables   = `table=~"$table"`
	inChecks   = `check=~"$check"`
	inRole     = `role=~"$role"`
)

// byTarget joins series of the same exporter: one pgcapacity process
// watches one database.
const byTarget = "cluster, job, instance"

// sel renders a metric selector carrying the cluster, job and instance
// matchers and any extra ones.
func sel(metric string, extra ...string) string {
	m := append([]string{inCluster, inJob, inInstance}, extra...)
	return metric + "{" + strings.Join(m, ", ") + "}"
}

// rateOf is the per-second rate of a counter over Grafana's rate interval.
func rateOf(selector string) string {
	return "rate(" + selector + "[$__rate_interval])"
}

func ptr[T any](v T) *T { return &v }

// Variables.

func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus")
}

// allOption selects "All" until the user picks.
var allOption = dashboard.VariableOption{
	Selected: ptr(true),
	Text:     dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
	Value:    dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
}

// multiVariable is a query variable over label values: multi-select, "All"
// meaning `.+`, refreshed whenever the time range changes.
func multiVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: ptr(query)}).
		Definition(query).
		Multi(true).
		IncludeAll(true).
		AllValue(".+").
		Current(allOption).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// singleVariable is a query variable where exactly one value makes sense
// (the table of the detail dashboard).
func singleVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: ptr(query)}).
		Definition(query).
		Multi(false).
		IncludeAll(false).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// withTargetVariables adds the data source, cluster, job and instance
// variables every dashboard starts with. Each narrows the next.
func withTargetVariables(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.
		WithVariable(datasourceVariable()).
		WithVariable(multiVariable("cluster", "Cluster", `label_values(pgcapacity_up, cluster)`)).
		WithVariable(multiVariable("job", "Job", `label_values(pgcapacity_up{`+inCluster+`}, job)`)).
		WithVariable(multiVariable("instance", "Instance", `label_values(pgcapacity_up{`+inCluster+`, `+inJob+`}, instance)`))
}

// Server roles, the values of pgcapacity_server_role_info's role label.
const (
	rolePrimary = "primary"
	roleStandby = "standby"
)

// roleVariable picks primaries, standbys or both. It starts on the primary:
// a standby replays the primary's data, so with every pod of an HA cluster
// shown each table would appear once per pod. Panels honour it through
// onRole.
func roleVariable() *dashboard.CustomVariableBuilder {
	option := func(v string, selected bool) dashboard.VariableOption {
		return dashboard.VariableOption{Selected: ptr(selected), Text: dashboard.StringOrArrayOfString{String: ptr(v)}, Value: dashboard.StringOrArrayOfString{String: ptr(v)}}
	}
	return dashboard.NewCustomVariableBuilder("role").
		Label("Role").
		Description("Primary (the default), standby, or both: which servers of an HA cluster the panels show.").
		Values(dashboard.StringOrMap{String: ptr(rolePrimary + "," + roleStandby)}).
		Options([]dashboard.VariableOption{option(rolePrimary, true), option(roleStandby, false)}).
		Current(option(rolePrimary, true)).
		Multi(true).
		IncludeAll(true).
		AllValue(".+")
}

// onRole keeps expr's series of the exporters whose server has a role the
// $role variable selects (pgcapacity_server_role_info). expr must be an
// instant vector keeping the cluster, job and instance labels.
func onRole(expr string) string {
	return "(" + expr + " and on (" + byTarget + ") " + sel("pgcapacity_server_role_info", inRole) + ")"
}

// selRole is sel narrowed to the selected roles (onRole).
func selRole(metric string, extra ...string) string { return onRole(sel(metric, extra...)) }

// schemaVariable and tableVariable pick watched tables from table_info.
func schemaVariable() *dashboard.QueryVariableBuilder {
	return multiVariable("schema", "Schema", `label_values(`+sel("pgcapacity_table_info")+`, schema)`)
}

func tableVariable() *dashboard.QueryVariableBuilder {
	return multiVariable("table", "Table", `label_values(`+sel("pgcapacity_table_info", inSchemas)+`, table)`)
}

// newDashboard sets what every pgcapacity dashboard shares: read-only,
// a stable uid, the tag, links to its siblings, shared crosshair.
func newDashboard(uid, title, description, from string) *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{Tag}).
		Readonly().
		Time(from, "now").
		Refresh("1m").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Link(dashboard.NewDashboardLinkBuilder("pgcapacity").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true).
			TargetBlank(false))
	return withTargetVariables(b)
}

// Queries.

// series is a range query drawn over time.
func series(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource).
		RefId(refID).
		Expr(expr).
		LegendFormat(legend).
		Range()
}

// latest is an instant query: the value now.
func latest(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource).
		RefId(refID).
		Expr(expr).
		LegendFormat(legend).
		Instant()
}

// rows is an instant query in table format: one row per series, one
// column per label.
func rows(refID, expr string) *prometheus.DataqueryBuilder {
	return latest(refID, expr, "__auto").Format(prometheus.PromQueryFormatTable)
}

// Thresholds.

// redAt is green below v and red from v on: the look of an operating rule.
func redAt(v float64) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "green"}, {Value: ptr(v), Color: "red"}})
}

// greenAt is red below v and green from v on (exporter up, for one).
func greenAt(v float64) *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "red"}, {Value: ptr(v), Color: "green"}})
}

// neutral is one color: a value with no good or bad.
func neutral() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().
		Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Color: "blue"}})
}

// dashedLine draws a time series' thresholds as dashed lines.
func dashedLine() *common.GraphThresholdsStyleConfigBuilder {
	return common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed)
}

// referenceLine styles one query's series as a red dashed line: a limit
// that is itself a metric (shared_buffers, the estimate), not a constant.
func referenceLine() []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{
		{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
		{Id: "custom.fillOpacity", Value: 0},
		{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}},
	}
}

// greyLine styles a comparison series (last week, a setting): grey and dashed.
func greyLine() []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{
		{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{4, 6}}},
		{Id: "custom.fillOpacity", Value: 0},
		{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "text"}},
	}
}

// Panels. Every constructor takes the id, title, description and unit, so
// none can be forgotten, and points the panel at the templated data source.

type statBuilder = stat.PanelBuilder

type cogSortBy = cog.Builder[common.TableSortByFieldState]

func newStat(id uint32, title, description, unit string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Id(id).
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource).
		ColorMode(common.BigValueColorModeBackground).
		Orientation(common.VizOrientationAuto).
		GraphMode(common.BigValueGraphModeNone).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
}

func newTimeseries(id uint32, title, description, unit string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Id(id).
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource).
		Min(0).
		LineWidth(1).
		FillOpacity(5).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"lastNotNull", "max"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

func newBarGauge(id uint32, title, description, unit string) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Id(id).
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource).
		Orientation(common.VizOrientationHorizontal).
		DisplayMode(common.BarGaugeDisplayModeBasic).
		ValueMode(common.BarGaugeValueModeText).
		ShowUnfilled(true).
		Sizing(common.BarGaugeSizingManual).
		MinVizHeight(12).
		MaxVizHeight(24).
		NamePlacement(common.BarGaugeNamePlacementLeft).
		Min(0).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))
}

func newTable(id uint32, title, description, unit string) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Id(id).
		Title(title).
		Description(description).
		Unit(unit).
		Datasource(datasource)
}

// Transformations of table panels.

// merge joins several instant queries into one row per label set.
func merge() dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}
}

// organize hides columns and renames the rest; order is the column order.
func organize(hide []string, rename map[string]string, order []string) dashboard.DataTransformerConfig {
	exclude := map[string]bool{}
	for _, h := range hide {
		exclude[h] = true
	}
	index := map[string]int{}
	for i, o := range order {
		index[o] = i
	}
	return dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
		"excludeByName": exclude,
		"renameByName":  rename,
		"indexByName":   index,
	}}
}

// hiddenColumns are the labels a table never needs to show.
var hiddenColumns = []string{"Time", "__name__", "cluster", "job", "instance"}

// unitOf overrides the unit of one column (or one query's series).
func unitOf(unit string) []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{{Id: "unit", Value: unit}}
}

// Links.

func link(title, url string) cog.Builder[dashboard.DashboardLink] {
	return dashboard.NewDashboardLinkBuilder(title).
		Type(dashboard.DashboardLinkTypeLink).
		Url(url).
		TargetBlank(false)
}

func externalLink(title, url string) cog.Builder[dashboard.DashboardLink] {
	return dashboard.NewDashboardLinkBuilder(title).
		Type(dashboard.DashboardLinkTypeLink).
		Url(url).
		TargetBlank(true)
}

// keptVariables carries the time range and the target variables into a
// linked dashboard.
const keptVariables = "${__url_time_range}&${datasource:queryparam}&${cluster:queryparam}&${job:queryparam}&${instance:queryparam}"

// detailURL opens the table detail dashboard on the current $table (one
// value: the overview repeats its rows per table).
const detailURL = "/d/" + UIDTable + "/?" + keptVariables + "&${role:queryparam}&${schema:queryparam}&var-table=${table}"

// runbook links a rule's section of the runbook.
func runbook(opts Options, alert string) cog.Builder[dashboard.DashboardLink] {
	return externalLink("Runbook: "+alert, opts.RunbookURL+"#"+strings.ToLower(alert))
}
