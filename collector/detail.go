package collector

import (
	"sort"
	"strconv"

	"github.com/sigid/pgcapacity/internal/config"
)

// Detail is which partitions publish per-partition series: all of them, the
// TopK worst of each table on each signal, or none.
type Detail struct {
	Mode config.DetailMode
	TopK int
}

// DetailFromConfig reads PGCAPACITY_PARTITION_DETAIL and _TOP_K.
func DetailFromConfig(cfg config.Config) Detail {
	return Detail{Mode: cfg.PartitionDetail, TopK: cfg.PartitionTopK}
}

// detailFromBool is the detail of the boolean constructors: every
// partition, or none.
func detailFromBool(all bool) Detail {
	if all {
		return Detail{Mode: config.DetailAll}
	}
	return Detail{Mode: config.DetailNone}
}

// resolve turns auto into all or top by the round's watched partitions.
func (d Detail) resolve(partitions int) config.DetailMode {
	if d.Mode != config.DetailAuto {
		return d.Mode
	}
	if partitions <= config.AutoAllPartitions {
		return config.DetailAll
	}
	return config.DetailTop
}

var descDetailInfo = newDesc("partition_detail_info",
	"Which partitions publish per-partition series this round: mode all, top (the top_k worst of each table on each signal) or none; value 1.",
	[]string{"mode", "top_k"})

// infoMetric is pgcapacity_partition_detail_info for the resolved mode.
func (d Detail) infoMetric(out *metricList, mode config.DetailMode) {
	k := "0"
	if mode == config.DetailTop {
		k = strconv.Itoa(d.TopK)
	}
	out.add(descDetailInfo, 1, string(mode), k)
}

// signal is one per-partition value by which partitions rank as worst;
// only positive values rank, so a table with nothing wrong shows no
// partition for a "how far above the trigger" signal.
type signal func(i int) float64

// shownPartitions returns which of n partitions publish series in mode:
// nil means all, an empty set none, otherwise the union of each signal's
// k largest positive values (ties broken by position, so the same
// partitions show round after round).
func shownPartitions(mode config.DetailMode, n, k int, signals ...signal) map[int]bool {
	switch mode {
	case config.DetailAll:
		return nil
	case config.DetailNone:
		return map[int]bool{}
	}
	shown := map[int]bool{}
	order := make([]int, n)
	for _, value := range signals {
		order = order[:0]
		for i := range n {
			if value(i) > 0 {
				order = append(order, i)
			}
		}
		sort.SliceStable(order, func(a, b int) bool { return value(order[a]) > value(order[b]) })
		for _, i := range order[:min(k, len(order))] {
			shown[i] = true
		}
	}
	return shown
}
