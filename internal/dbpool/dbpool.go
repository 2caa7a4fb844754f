// Package dbpool opens the exporter's connection pool: at most two
// connections, read-only, with lock and statement timeouts, so sampling
// never blocks behind DDL and never holds a long transaction.
package dbpool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgreSQL's timeout settings are int milliseconds; a larger value makes
// every connection fail at startup.
const (
	// MaxLockTimeout is the largest lock_timeout the server accepts.
	MaxLockTimeout = time.Duration(math.MaxInt32) * time.Millisecond
	// idleInTransactionFactor: a sampling transaction idle for this many
	// statement timeouts has been abandoned.
	idleInTransactionFactor = 2
	// MaxStatementTimeout is the largest statement timeout whose derived
	// idle_in_transaction_session_timeout the server still accepts.
	MaxStatementTimeout = time.Duration(math.MaxInt32/idleInTransactionFactor) * time.Millisecond
)

// millis renders d as a PostgreSQL millisecond setting, rounding up: a
// sub-millisecond timeout truncated to 0 would mean no timeout at all.
func millis(d time.Duration) string {
	ms := d.Milliseconds()
	if d > time.Duration(ms)*time.Millisecond {
		ms++
	}
	return strconv.FormatInt(ms, 10)
}

// SetLocalTimeouts sets the statement and lock timeouts of tx alone
// (set_config with is_local), rounded up to whole milliseconds like the
// pool's: a probe or check runs under its own limits.
func SetLocalTimeouts(ctx context.Context, tx pgx.Tx, statement, lock time.Duration) error {
	_, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('statement_timeout', $1, true), pg_catalog.set_config('lock_timeout', $2, true)",
		millis(statement), millis(lock))
	return err
}

// DescribeParseError says what is wrong with a connection string: the
// parameter or the file, never the string itself (which holds the password).
func DescribeParseError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		// pgx's file errors give only the path: name the parameter too.
		fileParameters := []struct{ pgxMessage, parameter string }{
			{"unable to read CA file", "sslrootcert"},
			{"unable to add CA to cert pool", "sslrootcert"},
			{"unable to read sslkey", "sslkey"},
			{"unable to decrypt key", "sslkey"},
			{"unable to read cert", "sslcert"},
			{"unable to load cert", "sslcert"},
			{"failed to read service file", "servicefile"},
		}
		// Its message quotes the (redacted) string before the reason.
		if _, reason, ok := strings.Cut(pe.Error(), "`: "); ok {
			for _, f := range fileParameters {
				if strings.Contains(reason, f.pgxMessage) {
					return "parameter " + f.parameter + ": " + reason
				}
			}
			return reason
		}
	}
	return err.Error()
}

// Options for the sampling pool.
type Options struct {
	MaxConns         int32
	StatementTimeout time.Duration
	LockTimeout      time.Duration
	ApplicationName  string
}

// Config parses url and applies the sampling session settings. The pool
// connects lazily, so a database that is down at start is not an error.
func Config(url string, o Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the connection string: %s", DescribeParseError(err))
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 2
	}
	if o.ApplicationName == "" {
		o.ApplicationName = "pgcapacity"
	}
	cfg.MaxConns = o.MaxConns
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.StatementTimeout {
		cfg.ConnConfig.ConnectTimeout = max(o.StatementTimeout, time.Second)
	}
	params := cfg.ConnConfig.RuntimeParams
	params["application_name"] = o.ApplicationName
	params["default_transaction_read_only"] = "on"
	if o.StatementTimeout > 0 {
		params["statement_timeout"] = millis(o.StatementTimeout)
		params["idle_in_transaction_session_timeout"] = millis(idleInTransactionFactor * o.StatementTimeout)
	}
	if o.LockTimeout > 0 {
		params["lock_timeout"] = millis(o.LockTimeout)
	}
	return cfg, nil
}
