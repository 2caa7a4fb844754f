// Package vacuumlag is the one definition of a partition's vacuum lag, used
// by serve, check and migrate plan: how long its dead rows have stood above
// its autovacuum trigger without a vacuum.
//
// It is its own package because internal/playbook imports collector, which
// computes the lag each round.
package vacuumlag

import "time"

// Observation is what one round reads of a partition.
type Observation struct {
	DeadRows   float64
	Trigger    float64   // dead rows that trigger autovacuum
	LastVacuum time.Time // last vacuum or autovacuum; zero when never
	// CountingSince stands in for a last vacuum that never ran: when the
	// server started counting (pg_postmaster_start_time()).
	CountingSince time.Time
	Now           time.Time // the database's now()
}

// Since returns when the partition's dead rows crossed the trigger (zero
// when below it) and the lag at o.Now. prev is the crossing a previous round
// returned (zero when none was observed, e.g. after a restart).
//
// An observed crossing holds until a vacuum runs after it. A crossing not
// observed starts from the best lower bound the database gives: dead rows
// grew from about 0 at the last vacuum to DeadRows now; at no faster than
// their average rate since, they reached the trigger at
// LastVacuum + (Now-LastVacuum)×Trigger/DeadRows. The estimate is exact for
// a steady rate, understates when dead rows came faster early on, and
// overstates only when they came in a burst lately. Without a last vacuum
// CountingSince takes its place (it overstates when the partition was
// created after the server started); without either the lag starts at 0.
func Since(o Observation, prev time.Time) (time.Time, time.Duration) {
	if o.DeadRows <= o.Trigger {
		return time.Time{}, 0
	}
	since := prev
	if since.IsZero() || o.LastVacuum.After(since) {
		since = Estimate(o)
	}
	if since.After(o.Now) {
		since = o.Now
	}
	return since, o.Now.Sub(since)
}

// Estimate is the crossing time a round infers when it has not observed it.
func Estimate(o Observation) time.Time {
	if o.LastVacuum.IsZero() {
		o.LastVacuum = o.CountingSince
	}
	if o.LastVacuum.IsZero() || !o.LastVacuum.Before(o.Now) || o.DeadRows <= 0 {
		return o.Now
	}
	elapsed := o.Now.Sub(o.LastVacuum)
	share := min(max(o.Trigger/o.DeadRows, 0), 1)
	return o.LastVacuum.Add(time.Duration(float64(elapsed) * share))
}
