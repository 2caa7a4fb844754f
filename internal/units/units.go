// Package units renders sizes for people, in one unit family (binary: KiB,
// MiB, GiB, as PostgreSQL's pg_size_pretty and the dashboards' bytes unit
// count), wherever pgcapacity prints one: check, migrate plan.
package units

import "fmt"

// Bytes renders a byte count with a binary unit.
func Bytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
