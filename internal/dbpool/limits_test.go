package dbpool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// The largest timeouts configuration accepts are the largest a real server
// accepts: a session with them starts, and one millisecond more in any of
// the three settings is refused (22023), which is what made every
// connection fail while pgcapacity_up stayed 1 (issue 14 item 3).
func TestLargestTimeoutsAreWhatPostgreSQLAccepts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t, &cluster)
	tests := []struct {
		name     string
		override map[string]string // runtime parameters set past the limit
		want     map[string]string // SHOW output when the session starts
	}{
		{"the largest accepted", nil, map[string]string{
			"statement_timeout":                   "1073741823ms",
			"idle_in_transaction_session_timeout": "2147483646ms",
			"lock_timeout":                        "2147483647ms",
		}},
		{"lock_timeout one more", map[string]string{"lock_timeout": "2147483648"}, nil},
		{"idle_in_transaction_session_timeout one more", map[string]string{"idle_in_transaction_session_timeout": "2147483648"}, nil},
		{"statement_timeout one more", map[string]string{"statement_timeout": "2147483648"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: dbpool.MaxStatementTimeout, LockTimeout: dbpool.MaxLockTimeout})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.override {
				cfg.ConnConfig.RuntimeParams[k] = v
			}
			conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
			if tc.want == nil {
				var pgErr *pgconn.PgError
				if err == nil {
					conn.Close(ctx)
				}
				if !errors.As(err, &pgErr) || pgErr.Code != "22023" {
					t.Fatalf("session with %v: %v, want it refused with 22023 (invalid_parameter_value)", tc.override, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("session with the largest timeouts configuration accepts: %v", err)
			}
			defer conn.Close(ctx)
			for setting, want := range tc.want {
				var got string
				if err := conn.QueryRow(ctx, "SELECT setting || coalesce(unit, '') FROM pg_settings WHERE name = $1", setting).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s = %s, want %s", setting, got, want)
				}
			}
		})
	}
}
