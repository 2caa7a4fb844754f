package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
)

func TestDefaults(t *testing.T) {
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddress != ":9842" || c.LiveRowsPerPartition != 1e6 || c.SkewRatio != 4 || c.RuleWindow.D() != 7*24*time.Hour ||
		c.PartitionDetail != config.DetailAuto || c.PartitionTopK != 5 || c.StatsInterval.D() != 2*time.Minute || c.ProbeInterval.D() != 30*time.Second || c.ProbeTenantRefresh.D() != 6*time.Hour || len(c.HotTables) != 4 {
		t.Errorf("defaults %+v", c)
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		variable, value, want string
	}{
		{"PGCAPACITY_QUERY_TIMEOUT", "abc", "is not a duration"},
		{"PGCAPACITY_QUERY_TIMEOUT", "0s", "greater than zero"},
		{"PGCAPACITY_QUERY_TIMEOUT", "", "empty duration"},
		{"PGCAPACITY_RULE_WINDOW", "99999999d", "whole number from 0"},
		{"PGCAPACITY_SKEW_RATIO", "0.5", "out of range"},
		{"PGCAPACITY_SKEW_RATIO", "NaN", "out of range"},
		{"PGCAPACITY_PLANNING_SHARE", "x", "is not a number"},
		{"PGCAPACITY_ADMINOPS_TENANT_CAP", "-1", "out of range"},
		{"PGCAPACITY_PARTITION_DETAIL", "maybe", "use auto, all, top or none"},
		{"PGCAPACITY_PARTITION_TOP_K", "0", "out of range"},
		{"PGCAPACITY_HOT_TABLES", "session,,referral", "empty entry"},
		{"PGCAPACITY_TABLES", "[", "not a valid glob"},
		{"PGCAPACITY_LOG_FORMAT", "xml", "text or json"},
		{"PGCAPACITY_COLLECTORS", "stats,probe", `"probe" is not a collector: use stats, sizes, migrations, probes, statements, adminops`},
		{"PGCAPACITY_COLLECTORS", "", "names no collector"},
		{"PGCAPACITY_DATABASE_URL", "postgres://u:topsecret@host:notaport/db", "cannot be used: invalid port"},
		// The parameter and the file are named, the password never.
		{"PGCAPACITY_DATABASE_URL", "postgres://u:topsecret@host/db?connect_timeout=x", "invalid connect_timeout"},
		{"PGCAPACITY_DATABASE_URL", "postgres://u:topsecret@host/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "parameter sslrootcert: failed to configure TLS (unable to read CA file: open /nonexistent/ca.pem"},
		{"PGCAPACITY_DATABASE_URL", "postgres://u:topsecret@host/db?sslmode=require&sslcert=/nonexistent/c.pem&sslkey=/nonexistent/k.pem", "parameter sslkey: failed to configure TLS (unable to read sslkey: open /nonexistent/k.pem"},
		// PostgreSQL takes int milliseconds; the statement timeout is doubled
		// for idle_in_transaction_session_timeout.
		{"PGCAPACITY_QUERY_TIMEOUT", "30d", "more than PostgreSQL accepts"},
		{"PGCAPACITY_QUERY_TIMEOUT", "13d", "more than PostgreSQL accepts"},
		{"PGCAPACITY_LOCK_TIMEOUT", "30d", "more than PostgreSQL accepts"},
		// One millisecond past what a real server accepts (dbpool's
		// TestLargestTimeoutsAreWhatPostgreSQLAccepts).
		{"PGCAPACITY_LOCK_TIMEOUT", "2147483648ms", "more than PostgreSQL accepts"},
		{"PGCAPACITY_QUERY_TIMEOUT", "1073741824ms", "more than PostgreSQL accepts"},
		{"PGCAPACITY_HEALTH_LISTEN_ADDRESS", "9843", "is not host:port"},
		{"PGCAPACITY_HEALTH_LISTEN_ADDRESS", ":9842", "is PGCAPACITY_LISTEN_ADDRESS too"},
	}
	for _, tc := range tests {
		t.Run(tc.variable+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.variable, tc.value)
			_, err := config.Load()
			var cfgErr *config.Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if cfgErr.Variable != tc.variable || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to name %s and say %q", err, tc.variable, tc.want)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Errorf("password echoed: %q", err)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"15s", 15 * time.Second, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{" 30d ", 30 * 24 * time.Hour, true},
		{"d", 0, false},
		{"-1s", 0, false},
		{"1.5d", 0, false},
		{"7", 0, false},
	}
	for _, tc := range tests {
		got, err := config.ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, got, err)
		}
	}
	if s := config.Duration(90 * 24 * time.Hour).String(); s != "90d" {
		t.Errorf("90 days renders as %s", s)
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern, schema, table string
		want                   bool
	}{
		{"session", "public", "session", true},
		{"session", "app", "session", true},
		{"public.session", "app", "session", false},
		{"referral*", "public", "referral_redemption", true},
		{"*.tenant_?", "x", "tenant_1", true},
		{"sess", "public", "session", false},
	}
	for _, tc := range tests {
		if got := config.Pattern(tc.pattern, tc.schema, tc.table); got != tc.want {
			t.Errorf("Pattern(%q, %q, %q) = %v", tc.pattern, tc.schema, tc.table, got)
		}
	}
}

// FuzzLoad: whatever the environment holds, Load never panics and every
// error names a PGCAPACITY_ variable on one line.
func FuzzLoad(f *testing.F) {
	seeds := [][3]string{
		{"15s", "4", "session,referral*"},
		{"7d", "1e300", "a.b"},
		{"", "NaN", ""},
		{"1d-1h", "-0", "[x"},
		{"999999d", "0x10", "*.*"},
		{"1µs", "4.0000001", "public.session,public.\"odd name\""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, interval, ratio, tables string) {
		for _, v := range []string{interval, ratio, tables} {
			if strings.ContainsRune(v, 0) {
				return // environment variables cannot hold NUL
			}
		}
		t.Setenv("PGCAPACITY_STATS_INTERVAL", interval)
		t.Setenv("PGCAPACITY_SKEW_RATIO", ratio)
		t.Setenv("PGCAPACITY_TABLES", tables)
		c, err := config.Load()
		if err == nil {
			if c.StatsInterval <= 0 || !(c.SkewRatio >= 1) {
				t.Fatalf("accepted an invalid configuration: %+v", c)
			}
			return
		}
		var cfgErr *config.Error
		if !errors.As(err, &cfgErr) || !strings.HasPrefix(cfgErr.Variable, "PGCAPACITY_") {
			t.Fatalf("error %q names no variable", err)
		}
		if strings.Contains(err.Error(), "\n") && !strings.Contains(interval+ratio+tables, "\n") {
			t.Fatalf("multi-line error %q", err)
		}
	})
}

func TestPartitionDetailModes(t *testing.T) {
	tests := []struct {
		value string
		want  config.DetailMode
	}{
		{"auto", config.DetailAuto},
		{"all", config.DetailAll},
		{"TOP", config.DetailTop},
		{"none", config.DetailNone},
		{"true", config.DetailAll},   // the boolean of earlier releases
		{"false", config.DetailNone}, // likewise
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("PGCAPACITY_PARTITION_DETAIL", tc.value)
			c, err := config.Load()
			if err != nil {
				t.Fatal(err)
			}
			if c.PartitionDetail != tc.want {
				t.Errorf("PGCAPACITY_PARTITION_DETAIL=%s gave %q, want %q", tc.value, c.PartitionDetail, tc.want)
			}
		})
	}
}
