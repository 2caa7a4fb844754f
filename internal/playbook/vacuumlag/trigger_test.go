package vacuumlag

import "testing"

func TestTriggersOf(t *testing.T) {
	pg17 := Settings{VacuumThreshold: 50, VacuumScaleFactor: 0.2, VacuumMaxThreshold: -1, AnalyzeThreshold: 50, AnalyzeScaleFactor: 0.1}
	pg18 := pg17
	pg18.VacuumMaxThreshold = 100_000_000
	tests := []struct {
		name      string
		s         Settings
		opts      []string
		reltuples float64
		want      Triggers
	}{
		{"server settings", pg17, nil, 1000, Triggers{Vacuum: 250, Analyze: 150}},
		{"never analyzed counts as empty", pg17, nil, -1, Triggers{Vacuum: 50, Analyze: 50}},
		{"reloptions win", pg17, []string{"autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=0", "fillfactor=90"}, 1000, Triggers{Vacuum: 10, Analyze: 150}},
		{"a bad reloption keeps the setting", pg17, []string{"autovacuum_vacuum_threshold=-3"}, 0, Triggers{Vacuum: 50, Analyze: 50}},
		{"18 caps the trigger", pg18, nil, 1e9, Triggers{Vacuum: 1e8, Analyze: 50 + 1e8}},
		{"the cap from reloptions", pg18, []string{"autovacuum_vacuum_max_threshold=500"}, 1e6, Triggers{Vacuum: 500, Analyze: 50 + 1e5}},
		{"autovacuum off", pg17, []string{"autovacuum_enabled=false"}, 0, Triggers{Vacuum: 50, Analyze: 50, AutovacuumOff: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TriggersOf(tt.s, tt.opts, tt.reltuples); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	missing := "x"
	if ParseMaxThreshold(nil) != -1 || ParseMaxThreshold(&missing) != -1 {
		t.Error("a missing setting is a cap")
	}
}
