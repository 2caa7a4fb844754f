package config

import (
	"fmt"
	"strings"
)

// DetailMode is which partitions publish per-partition series
// (PGCAPACITY_PARTITION_DETAIL).
type DetailMode string

// The partition detail modes.
const (
	// DetailAuto is DetailAll up to AutoAllPartitions watched partitions and
	// DetailTop above, so a database's series stay bounded as it grows.
	DetailAuto DetailMode = "auto"
	// DetailAll publishes every partition's series.
	DetailAll DetailMode = "all"
	// DetailTop publishes only the PGCAPACITY_PARTITION_TOP_K worst
	// partitions of each table on each signal.
	DetailTop DetailMode = "top"
	// DetailNone keeps only the per-table aggregates.
	DetailNone DetailMode = "none"
)

// AutoAllPartitions is the most watched partitions for which the auto mode
// still publishes every partition: about 12 series a partition keep a
// database under 3,000 series.
const AutoAllPartitions = 200

// Decode implements envconfig.Decoder. The booleans of earlier releases
// keep their meaning: true is all, false is none.
func (m *DetailMode) Decode(value string) error {
	switch v := strings.ToLower(strings.TrimSpace(value)); v {
	case "true":
		*m = DetailAll
	case "false":
		*m = DetailNone
	case string(DetailAuto), string(DetailAll), string(DetailTop), string(DetailNone):
		*m = DetailMode(v)
	default:
		return fmt.Errorf("%q is not a partition detail mode: use auto, all, top or none", value)
	}
	return nil
}
