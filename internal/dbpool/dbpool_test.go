package dbpool

import (
	"strings"
	"testing"
	"time"
)

func TestTimeoutSettings(t *testing.T) {
	tests := []struct {
		statement, lock         time.Duration
		wantStatement, wantLock string
		wantIdleInTransaction   string
	}{
		// Sub-millisecond values round up: 0 would mean no timeout at all.
		{500 * time.Microsecond, 500 * time.Microsecond, "1", "1", "1"},
		{time.Nanosecond, time.Nanosecond, "1", "1", "1"},
		{1500 * time.Microsecond, time.Second, "2", "1000", "3"},
		{10 * time.Second, time.Second, "10000", "1000", "20000"},
		{MaxStatementTimeout, MaxLockTimeout, "1073741823", "2147483647", "2147483646"},
	}
	for _, tc := range tests {
		cfg, err := Config("postgres://u@127.0.0.1/db", Options{StatementTimeout: tc.statement, LockTimeout: tc.lock})
		if err != nil {
			t.Fatal(err)
		}
		p := cfg.ConnConfig.RuntimeParams
		if p["statement_timeout"] != tc.wantStatement || p["lock_timeout"] != tc.wantLock || p["idle_in_transaction_session_timeout"] != tc.wantIdleInTransaction {
			t.Errorf("statement %v lock %v: got statement_timeout=%s lock_timeout=%s idle_in_transaction_session_timeout=%s, want %s %s %s",
				tc.statement, tc.lock, p["statement_timeout"], p["lock_timeout"], p["idle_in_transaction_session_timeout"],
				tc.wantStatement, tc.wantLock, tc.wantIdleInTransaction)
		}
	}
}

func TestParseErrorNamesTheParameterNotThePassword(t *testing.T) {
	_, err := Config("postgres://u:topsecret@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", Options{})
	if err == nil {
		t.Fatal("a missing sslrootcert file was accepted")
	}
	for _, want := range []string{"sslrootcert", "CA file", "/nonexistent/ca.pem"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "xxxxx") {
		t.Errorf("error %q shows the connection string", err)
	}
}
