package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/migrate"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestJSONOutputsShareOneConvention: check, migrate status and migrate
// validate print snake_case keys and durations as seconds (_seconds keys),
// never Go field names or nanoseconds.
func TestJSONOutputsShareOneConvention(t *testing.T) {
	eta, hold, oid, msg := 90*time.Second, 0.25, uint32(7), "x"
	now := time.Now()
	status := &migrate.Status{Migration: &migrate.Migration{ID: 1, Phase: "ready", NewOID: &oid, LastLockHoldSeconds: &hold, LastError: &msg, ForceDecreaseReason: &msg,
		CopyStartedAt: &now, CopyFinishedAt: &now, ValidatedAt: &now, SwappedAt: &now, RolledBackAt: &now, RollbackDeadline: &now, FinishedAt: &now, KeyColumns: []string{"id"}},
		ETA: eta, Events: []migrate.Event{{At: now, Actor: "a", Event: "e", Detail: "d"}}}
	validation := &migrate.Validation{OK: true, Partitions: []migrate.PartitionCheck{{Name: "p"}}, Problems: []string{"p"}}
	skew := 1.5
	check := checkReport{
		Capacity: playbook.Report{Tables: []playbook.TableSummary{{SkewRatio: &skew}}, Findings: []playbook.Finding{{Rule: "r"}}},
		Latency:  latencyReport{PlanningMin: time.Millisecond, PlanningMinSeconds: 0.001, Tables: []latencyTable{{TableLatency: probes.TableLatency{Samples: 1}}}},
	}
	outputs := []struct {
		name string
		v    any
	}{
		{"check", check},
		{"migrate status", statusViews([]*migrate.Status{status})},
		{"migrate validate", validationView(validation)},
	}
	for _, o := range outputs {
		t.Run(o.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeJSON(&buf, o.v); err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			walkKeys(doc, func(k string) {
				if !snakeCase.MatchString(k) || strings.HasSuffix(k, "_ns") {
					t.Errorf("key %q is not snake_case with seconds", k)
				}
			})
			checkDurations(t, reflect.TypeOf(o.v), map[reflect.Type]bool{})
		})
	}
	var buf bytes.Buffer
	if err := writeJSON(&buf, statusView(status)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"eta_seconds": 90`) || !strings.Contains(buf.String(), `"last_lock_hold_seconds": 0.25`) {
		t.Errorf("durations not in seconds:\n%s", buf.String())
	}
}

// TestMigrateJSONViewsCoverEveryField: a field added to the migrate types
// must be added to their --json view too.
func TestMigrateJSONViewsCoverEveryField(t *testing.T) {
	fields := func(v any) int { return reflect.TypeOf(v).NumField() }
	keys := func(v any) int {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	s := &migrate.Status{Migration: &migrate.Migration{}}
	cases := []struct {
		name         string
		fields, keys int
	}{
		{"Status and Migration", fields(migrate.Status{}) - 1 + fields(migrate.Migration{}), keys(statusView(s))},
		{"Event", fields(migrate.Event{}), keys(eventJSON{})},
		{"Validation", fields(migrate.Validation{}), keys(validationView(&migrate.Validation{}))},
		{"PartitionCheck", fields(migrate.PartitionCheck{}), keys(partitionCheckJSON{})},
	}
	for _, c := range cases {
		if c.fields != c.keys {
			t.Errorf("%s: %d Go fields, %d JSON keys: add the new field to migrate_json.go", c.name, c.fields, c.keys)
		}
	}
}

func walkKeys(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			f(k)
			walkKeys(x, f)
		}
	case []any:
		for _, x := range v {
			walkKeys(x, f)
		}
	}
}

// checkDurations fails on a time.Duration field that reaches the JSON
// (encoding/json would print nanoseconds). Types with their own
// MarshalJSON are judged by their output (walkKeys).
func checkDurations(t *testing.T, typ reflect.Type, seen map[reflect.Type]bool) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || seen[typ] || typ.Implements(reflect.TypeFor[json.Marshaler]()) {
		return
	}
	seen[typ] = true
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() || f.Tag.Get("json") == "-" {
			continue
		}
		if f.Type == reflect.TypeFor[time.Duration]() {
			t.Errorf("%s.%s is a time.Duration in the JSON: print seconds", typ, f.Name)
		}
		checkDurations(t, f.Type, seen)
	}
}
