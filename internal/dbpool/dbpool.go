// Package dbpool opens the exporter's connection pool: at most two
// connections, read-only, with lock and statement timeouts, so sampling
// never blocks behind DDL and never holds a long transaction.
package dbpool

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

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
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("parsing the connection string: %w", err)
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
		params["statement_timeout"] = strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(2*o.StatementTimeout.Milliseconds(), 10)
	}
	if o.LockTimeout > 0 {
		params["lock_timeout"] = strconv.FormatInt(o.LockTimeout.Milliseconds(), 10)
	}
	return cfg, nil
}
