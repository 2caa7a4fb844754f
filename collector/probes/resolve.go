package probes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/internal/dbpool"
)

// resolve reads which probes run now: the configured ones, then one
// derived probe per watched hot table that has none of its own (and is not
// disabled), with every probe table resolved and its tenants sampled. Two
// catalog queries (one with derived probes off) and the lookup of migrate's
// records (one query, two with a pgcapacity schema), whatever the number of
// tables and partitions.
func (c *Collector) resolve(ctx context.Context, q querier) ([]Probe, []Skipped, map[tableName]*target, error) {
	var derived []Probe
	var skipped []Skipped
	if c.opts.Derive {
		tables, err := readCatalog(ctx, q)
		if err != nil {
			return nil, nil, nil, err
		}
		derived, skipped = derive(tables, c.opts.Selection)
	}
	var names []tableName
	seen := map[tableName]bool{}
	for _, ps := range [][]Probe{c.opts.Probes, derived} {
		for _, p := range ps {
			if n := (tableName{p.Schema, p.Table}); !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	targets, err := loadTargets(ctx, q, names, c.opts.TenantColumn, tenantBudget{c.opts.TenantsPerPartition, c.opts.TenantsPerTable})
	if err != nil {
		return nil, nil, nil, err
	}
	// A configured probe replaces the derived probe of its table, or of
	// its name.
	replaced := map[tableName]bool{}
	taken := map[string]bool{}
	for _, p := range c.opts.Probes {
		if t := targets[tableName{p.Schema, p.Table}]; t != nil && !t.missing {
			replaced[tableName{t.schema, t.table}] = true
		}
		taken[p.Name] = true
	}
	for _, d := range c.opts.Disabled {
		taken[d.Name] = true
	}
	active := append([]Probe(nil), c.opts.Probes...)
	for _, p := range derived {
		if !replaced[tableName{p.Schema, p.Table}] && !taken[p.Name] {
			active = append(active, p)
		}
	}
	return active, skipped, targets, nil
}

// Listed is one probe as it runs now: its table as the database resolved
// it, the tenant key its tenants are sampled on, and how many it knows.
type Listed struct {
	Probe
	TableMissing   bool `json:"table_missing,omitempty"`
	Partitions     int  `json:"partitions"`
	TenantsSampled int  `json:"tenants_sampled"`
}

// Resolution is every probe that runs, and the watched hot tables that
// have none.
type Resolution struct {
	Probes   []Listed  `json:"probes"`
	Unprobed []Skipped `json:"not_probed"`
}

// Resolve reads the catalog and the tenant sample now and says which
// probes run, with their SQL: what `pgcapacity probes` lists.
func (c *Collector) Resolve(ctx context.Context, pool *pgxpool.Pool) (Resolution, error) {
	c.mu.Lock()
	c.refreshed = time.Time{}
	c.targets = nil // a failure is reported, not hidden behind an older sample
	err := c.refresh(ctx, pool)
	c.mu.Unlock()
	if err != nil {
		return Resolution{}, err
	}
	return c.Active(), nil
}

// Active says which probes the last refresh chose; empty before the first round.
func (c *Collector) Active() Resolution {
	c.mu.Lock()
	defer c.mu.Unlock()
	res := Resolution{Probes: []Listed{}, Unprobed: append([]Skipped{}, c.skipped...)}
	for _, p := range c.active {
		l := Listed{Probe: p}
		if t := c.targets[tableName{p.Schema, p.Table}]; t != nil {
			l.Schema, l.Table, l.TableMissing = t.schema, t.table, t.missing
			if l.TenantKey == "" {
				l.TenantKey = t.column
			}
			l.Partitions, l.TenantsSampled = t.leaves, t.tenantCount()
		}
		res.Probes = append(res.Probes, l)
	}
	return res
}

// QueryError is a configured probe that does not fit the database: its
// table or tenant column does not exist, or its SQL does not prepare.
// serve refuses to start on it.
type QueryError struct {
	File  string
	Probe string
	Line  int
	Err   error
}

func (e *QueryError) Error() string {
	where := fmt.Sprintf("probe %q", e.Probe)
	if e.Line > 0 {
		where += fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.File != "" {
		where = "probes file " + e.File + ": " + where
	}
	return where + ": " + e.Err.Error()
}

func (e *QueryError) Unwrap() error { return e.Err }

// checkTableSQL resolves a probe's table and its tenant column (the first
// partition key column, else the configured one).
const checkTableSQL = `
SELECT c.oid IS NOT NULL, k.col::text, EXISTS (
	SELECT 1 FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = c.oid AND a.attname = k.col AND a.attnum > 0 AND NOT a.attisdropped)
FROM (SELECT to_regclass($1) AS oid) r
LEFT JOIN pg_catalog.pg_class c ON c.oid = r.oid
CROSS JOIN LATERAL (
	SELECT COALESCE((
		SELECT a.attname FROM pg_catalog.pg_partitioned_table p
		JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
		WHERE p.partrelid = c.oid), $2::name) AS col
) k`

// Validate checks, at start, every configured probe against the database:
// its table and tenant column exist and its SQL prepares (parse analysis
// names a missing table or column); and every disabled name is a derived
// probe. A probe that does not fit is a *QueryError; anything else (the
// database down) is returned as it is.
func (c *Collector) Validate(ctx context.Context, pool *pgxpool.Pool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.opts.Disabled) > 0 {
		tables, err := readCatalog(ctx, pool)
		if err != nil {
			return err
		}
		derived, _ := derive(tables, c.opts.Selection)
		names := map[string]bool{}
		for _, p := range derived {
			names[p.Name] = true
		}
		for _, d := range c.opts.Disabled {
			if !names[d.Name] {
				return &QueryError{File: c.opts.File, Probe: d.Name, Line: d.line,
					Err: errors.New("disabled, but no watched hot table has a derived probe of that name (`pgcapacity probes` lists them): remove the entry")}
			}
		}
	}
	if len(c.opts.Probes) == 0 {
		return nil
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("validating the probes: %w", err)
	}
	defer conn.Release()
	for _, p := range c.opts.Probes {
		if err := c.validateProbe(ctx, conn.Conn(), p); err != nil {
			return err
		}
	}
	return nil
}

func (c *Collector) validateProbe(ctx context.Context, conn *pgx.Conn, p Probe) error {
	bad := func(err error) error { return &QueryError{File: c.opts.File, Probe: p.Name, Line: p.line, Err: err} }
	table := pgx.Identifier{p.Table}.Sanitize()
	if p.Schema != "" {
		table = pgx.Identifier{p.Schema, p.Table}.Sanitize()
	}
	var exists, hasColumn bool
	var column string
	if err := conn.QueryRow(ctx, checkTableSQL, table, c.opts.TenantColumn).Scan(&exists, &column, &hasColumn); err != nil {
		return fmt.Errorf("validating probe %q: %w", p.Name, err)
	}
	switch {
	case !exists:
		return bad(fmt.Errorf("table %s does not exist (or is not visible to this role): name an existing table", p.QualifiedName()))
	case !hasColumn:
		return bad(fmt.Errorf("table %s has no tenant column %s (its partition key's first column, else PGCAPACITY_TENANT_COLUMN): name a table keyed by tenant", p.QualifiedName(), column))
	}
	// Parse analysis only: nothing runs. In a read-only transaction with
	// the sampling timeouts, like the probe itself.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("validating probe %q: %w", p.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := dbpool.SetLocalTimeouts(ctx, tx, c.opts.QueryTimeout, c.opts.LockTimeout); err != nil {
		return fmt.Errorf("validating probe %q: %w", p.Name, err)
	}
	if _, err := conn.PgConn().Prepare(ctx, "", p.SQL, nil); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57014" && pgErr.Code != "55P03" { // not a timeout: the SQL itself
			return bad(fmt.Errorf("the SQL does not fit this database: %s (SQLSTATE %s): fix or remove the probe", pgErr.Message, pgErr.Code))
		}
		return fmt.Errorf("validating probe %q: %w", p.Name, err)
	}
	return nil
}
