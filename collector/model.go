package collector

import (
	"sort"
	"time"
)

// Server holds the server-wide settings a round reads.
type Server struct {
	Now                time.Time
	VersionNum         int
	StartedAt          time.Time // pg_postmaster_start_time(): lag's bound for never-vacuumed partitions
	InRecovery         bool      // a standby: live rows from reltuples, no vacuum or analyze lag
	SharedBuffersBytes float64
	FreezeMaxAge       float64
	VacuumThreshold    float64
	VacuumScaleFactor  float64
	VacuumMaxThreshold float64 // PostgreSQL 18+; negative: no cap
	AnalyzeThreshold   float64
	AnalyzeScaleFactor float64
}

// Table is one watched partitioned table with its leaf partitions.
type Table struct {
	OID          uint32 // the partitioned parent's
	Schema       string
	Name         string
	Strategy     string // hash, list or range
	PartitionKey string // key columns, comma-separated
	TenantKey    string // the column tenant-leading indexes lead with
	Hot          bool
	// The parent's own statistics, which autovacuum never gathers: its last
	// ANALYZE (zero when the server does not report one) and whether it has
	// none at all (no analyze time, reltuples -1 on 14+, no pg_stats rows).
	ParentAnalyzed          time.Time
	ParentStatisticsMissing bool
	Partitions              []Partition
}

// Partition is one leaf partition. Multi-level partitions roll up to the
// top-level table.
type Partition struct {
	Name             string
	OID              uint32
	LiveRows         float64
	DeadRows         float64
	ModSinceAnalyze  float64
	Reltuples        float64
	VacuumThreshold  float64 // dead rows that trigger autovacuum
	AnalyzeThreshold float64 // modified rows that trigger autoanalyze
	AutovacuumOff    bool
	LastVacuum       time.Time
	LastAnalyze      time.Time
	VacuumLag        time.Duration
	AnalyzeLag       time.Duration
	XIDAge           float64
	// PostgreSQL 18+: cumulative time spent in manual and auto vacuum.
	VacuumSeconds     float64
	AutovacuumSeconds float64
	HasVacuumTime     bool
}

// PartitionSizes are a leaf partition's on-disk sizes.
type PartitionSizes struct {
	Name             string
	HeapBytes        float64
	IndexBytes       float64
	TenantIndexBytes float64 // btree indexes whose first column is the tenant key
	Estimated        bool    // read from the catalog because the relation was locked
}

// TableSizes are the sizes of one watched table's partitions.
type TableSizes struct {
	OID        uint32 // the partitioned parent's
	Schema     string
	Name       string
	Strategy   string // hash, list or range
	Hot        bool
	Partitions []PartitionSizes
}

// TenantIndexBytes sums the tenant-leading btree indexes of all partitions.
func (t TableSizes) TenantIndexBytes() (total, partitionMax float64) {
	for _, p := range t.Partitions {
		total += p.TenantIndexBytes
		if p.TenantIndexBytes > partitionMax {
			partitionMax = p.TenantIndexBytes
		}
	}
	return total, partitionMax
}

// Aggregates summarise live rows across a table's partitions.
type Aggregates struct {
	Partitions int
	Total      float64
	Avg        float64
	Median     float64
	Max        float64
	// Skew is Max / Median; HasSkew is false when the median is 0.
	Skew    float64
	HasSkew bool
	// Worst partition by lag and xid age.
	VacuumLag  time.Duration
	AnalyzeLag time.Duration
	XIDAgeMax  float64
	// LastAnalyze is the newest analyze or autoanalyze of any partition
	// (zero when none was ever analyzed): parent statistics older than it
	// miss changes the partitions' own statistics have seen.
	LastAnalyze time.Time
}

// Aggregate computes the per-table figures the rules and check use.
func Aggregate(parts []Partition) Aggregates {
	a := Aggregates{Partitions: len(parts)}
	if len(parts) == 0 {
		return a
	}
	rows := make([]float64, len(parts))
	for i, p := range parts {
		rows[i] = p.LiveRows
		a.Total += p.LiveRows
		a.Max = max(a.Max, p.LiveRows)
		a.VacuumLag = max(a.VacuumLag, p.VacuumLag)
		a.AnalyzeLag = max(a.AnalyzeLag, p.AnalyzeLag)
		a.XIDAgeMax = max(a.XIDAgeMax, p.XIDAge)
		if p.LastAnalyze.After(a.LastAnalyze) {
			a.LastAnalyze = p.LastAnalyze
		}
	}
	a.Avg = a.Total / float64(len(parts))
	a.Median = median(rows)
	if a.Median > 0 {
		a.Skew, a.HasSkew = a.Max/a.Median, true
	}
	return a
}

func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
