package vacuumlag

import (
	"strconv"
	"strings"
)

// Settings are the server's autovacuum settings a partition's triggers
// derive from.
type Settings struct {
	VacuumThreshold    float64
	VacuumScaleFactor  float64
	VacuumMaxThreshold float64 // PostgreSQL 18+; negative: no cap
	AnalyzeThreshold   float64
	AnalyzeScaleFactor float64
}

// SettingsSQL selects Settings' fields in order; scan the third into a
// *string and pass it to ParseMaxThreshold (the setting exists from
// PostgreSQL 18 on; missing_ok makes it NULL before).
const SettingsSQL = `current_setting('autovacuum_vacuum_threshold')::float8,
       current_setting('autovacuum_vacuum_scale_factor')::float8,
       current_setting('autovacuum_vacuum_max_threshold', true),
       current_setting('autovacuum_analyze_threshold')::float8,
       current_setting('autovacuum_analyze_scale_factor')::float8`

// ParseMaxThreshold reads autovacuum_vacuum_max_threshold as scanned from
// SettingsSQL: -1 (no cap) when the server has no such setting.
func ParseMaxThreshold(v *string) float64 {
	if v != nil {
		if f, err := strconv.ParseFloat(*v, 64); err == nil {
			return f
		}
	}
	return -1
}

// Triggers are a partition's autovacuum and autoanalyze triggers.
type Triggers struct {
	Vacuum        float64 // dead rows that trigger autovacuum
	Analyze       float64 // modified rows that trigger autoanalyze
	AutovacuumOff bool    // autovacuum_enabled=false on the partition
}

// TriggersOf computes a partition's triggers as autovacuum.c does, for
// serve, check and migrate plan alike: base + scale_factor × reltuples
// (reltuples < 0, never analyzed, counts as 0), capped by
// autovacuum_vacuum_max_threshold on PostgreSQL 18+, the partition's
// reloptions (pg_class.reloptions, "name=value") taking precedence over
// the server's settings.
func TriggersOf(s Settings, reloptions []string, reltuples float64) Triggers {
	opts := make(map[string]string, len(reloptions))
	for _, o := range reloptions {
		if k, v, ok := strings.Cut(o, "="); ok {
			opts[k] = v
		}
	}
	num := func(name string, def float64) float64 {
		if v, ok := opts[name]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
				return f
			}
		}
		return def
	}
	tuples := max(reltuples, 0)
	t := Triggers{
		Vacuum:        num("autovacuum_vacuum_threshold", s.VacuumThreshold) + num("autovacuum_vacuum_scale_factor", s.VacuumScaleFactor)*tuples,
		Analyze:       num("autovacuum_analyze_threshold", s.AnalyzeThreshold) + num("autovacuum_analyze_scale_factor", s.AnalyzeScaleFactor)*tuples,
		AutovacuumOff: opts["autovacuum_enabled"] == "false" || opts["autovacuum_enabled"] == "off",
	}
	if maxThreshold := num("autovacuum_vacuum_max_threshold", s.VacuumMaxThreshold); maxThreshold >= 0 && t.Vacuum > maxThreshold {
		t.Vacuum = maxThreshold
	}
	return t
}
