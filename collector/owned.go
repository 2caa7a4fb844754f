package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigid/pgcapacity/collector/migrationtables"
)

// The tables migrate owns (a migration's shadow and retained tables) are
// not watched as tables: no pgcapacity_table_* or pgcapacity_partition_*
// series, no rule input. They appear only as their migration's rows and
// bytes.
var (
	descMigrationTableRows = newDesc("migration_table_rows",
		"Live rows of a table migrate owns, all partitions: role shadow (the new table while not live) or retained (the original kept for rollback).", []string{"id", "role"})
	descMigrationTableBytes = newDesc("migration_table_bytes",
		"Heap and indexes of a table migrate owns, all partitions, in bytes: role shadow (the new table while not live) or retained (the original kept for rollback).", []string{"id", "role"})
)

// owned is a table migrate owns, with what a round read of it.
type owned[T any] struct {
	Migration migrationtables.Table
	Of        T
}

// splitOwned separates the tables migrate owns from the rest, keeping of
// the rest only the watched ones.
func splitOwned[T any](all []T, records migrationtables.Records, key func(T) (schema, name string, oid uint32), watched func(T) bool) ([]T, []owned[T]) {
	var kept []T
	var mine []owned[T]
	for _, t := range all {
		schema, name, oid := key(t)
		if m, ok := records.Lookup(oid, schema, name); ok {
			mine = append(mine, owned[T]{m, t})
			continue
		}
		if watched(t) {
			kept = append(kept, t)
		}
	}
	return kept, mine
}

// ownedMetrics adds one series per migration and role (summed, should a
// migration ever own two tables of one role: the series must stay unique).
func ownedMetrics[T any](out *metricList, desc *prometheus.Desc, tables []owned[T], value func(T) float64) {
	sums := map[migrationtables.Table]float64{}
	var order []migrationtables.Table
	for _, t := range tables {
		if _, ok := sums[t.Migration]; !ok {
			order = append(order, t.Migration)
		}
		sums[t.Migration] += value(t.Of)
	}
	for _, m := range order {
		out.add(desc, sums[m], strconv.FormatInt(m.ID, 10), m.Role)
	}
}
