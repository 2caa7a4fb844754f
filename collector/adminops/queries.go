package adminops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"go.yaml.in/yaml/v3"

	"github.com/sigid/pgcapacity/internal/sqllex"
)

// SourceDefault is the Source of a check that runs its embedded query.
const SourceDefault = "default"

// Check is one admin-operations check ready to run.
type Check struct {
	Name     string
	Query    string // as written, with named parameters
	Source   string // SourceDefault or the override file
	Disabled bool   // switched off in the override file
	// NotApplicable is why the database lacks what the default query reads
	// (found by Validate); such a check is skipped, which is not a failure.
	NotApplicable string

	sql    string   // Query with $n placeholders
	params []string // the parameter name bound to each $n
}

// QueryError is a check whose query cannot be used: it names the check,
// where its query came from, and the problem with its fix.
type QueryError struct {
	Check   string
	Source  string
	Problem string
	Err     error // the underlying error, if any
}

func (e *QueryError) Error() string {
	where := "the default query"
	if e.Source != SourceDefault && e.Source != "" {
		where = e.Source
	}
	return fmt.Sprintf("admin-ops check %s (%s): %s", e.Check, where, e.Problem)
}

func (e *QueryError) Unwrap() error { return e.Err }

// overrideFile is the YAML form of PGCAPACITY_ADMINOPS_QUERIES_FILE.
type overrideFile struct {
	Checks map[string]struct {
		Query    string `yaml:"query"`
		Disabled bool   `yaml:"disabled"`
	} `yaml:"checks"`
}

// LoadChecks returns the checks in report order: the embedded defaults,
// replaced by the overrides in the YAML file at path (none when path is
// empty). It checks the file's form and each query's parameters; Validate
// checks the queries against the database.
func LoadChecks(path string) ([]Check, error) {
	checks := make([]Check, 0, len(CheckNames()))
	for _, name := range CheckNames() {
		q, err := DefaultQuery(name)
		if err != nil {
			return nil, err
		}
		checks = append(checks, Check{Name: name, Query: q, Source: SourceDefault})
	}
	if path != "" {
		if err := applyOverrides(path, checks); err != nil {
			return nil, err
		}
	}
	for i := range checks {
		if checks[i].Disabled {
			continue
		}
		if err := checks[i].rewrite(); err != nil {
			return nil, err
		}
	}
	return checks, nil
}

func applyOverrides(path string, checks []Check) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the admin-ops queries file (PGCAPACITY_ADMINOPS_QUERIES_FILE): %w", err)
	}
	var f overrideFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("admin-ops queries file %s: %v: the form is\n%s", path, err, exampleFile)
	}
	if len(f.Checks) == 0 {
		return fmt.Errorf("admin-ops queries file %s overrides no check: the form is\n%s", path, exampleFile)
	}
	for name, o := range f.Checks {
		i := slices.IndexFunc(checks, func(c Check) bool { return c.Name == name })
		if i < 0 {
			return &QueryError{Check: name, Source: path, Problem: "is not a check: use one of " + strings.Join(CheckNames(), ", ")}
		}
		query := strings.TrimSpace(o.Query)
		switch {
		case o.Disabled && query != "":
			return &QueryError{Check: name, Source: path, Problem: "has both a query and disabled: true: keep one"}
		case !o.Disabled && query == "":
			return &QueryError{Check: name, Source: path, Problem: "has no query: give `query: SELECT ... AS tenant, ... AS findings`, or `disabled: true` to switch the check off"}
		}
		if !o.Disabled {
			// Refused here, not only by the READ ONLY transaction of every round.
			if _, err := sqllex.ReadOnlySelect(o.Query); err != nil {
				return &QueryError{Check: name, Source: path, Problem: "the query " + err.Error() + ": a check may only read; write one `SELECT ... AS tenant, ... AS findings`", Err: err}
			}
		}
		checks[i] = Check{Name: name, Query: o.Query, Source: path, Disabled: o.Disabled}
	}
	return nil
}

const exampleFile = `checks:
  admins_without_mfa:
    query: |
      SELECT tenant_key::text AS tenant, count(*) AS findings
      FROM admins WHERE NOT mfa GROUP BY tenant_key
  stale_invitations:
    disabled: true`

// rewrite turns the named parameters into $n placeholders with pgx's own
// lexer, so quoting and comments follow its rules, and refuses unknown names.
func (c *Check) rewrite() error {
	known := make(pgx.NamedArgs, len(parameterNames))
	for _, n := range parameterNames {
		known[n] = n // each placeholder's value is its name: newArgs lists the names in $n order
	}
	sql, names, err := known.RewriteQuery(context.Background(), nil, c.Query, nil)
	if err != nil {
		return &QueryError{Check: c.Name, Source: c.Source, Problem: "reading its parameters: " + err.Error(), Err: err}
	}
	if slices.Contains(names, nil) {
		problem := "uses a parameter pgcapacity does not bind"
		// StrictNamedArgs names the first unknown parameter.
		if _, _, err := pgx.StrictNamedArgs(known).RewriteQuery(context.Background(), nil, c.Query, nil); err != nil {
			var unknown string
			if _, scanErr := fmt.Sscanf(err.Error(), "argument %s found in sql query", &unknown); scanErr == nil {
				problem = fmt.Sprintf("uses the parameter @%s, which pgcapacity does not bind", unknown)
			}
		}
		return &QueryError{Check: c.Name, Source: c.Source, Problem: problem + ": the parameters are " + parameterList()}
	}
	c.sql = sql
	c.params = make([]string, len(names))
	for i, n := range names {
		c.params[i] = n.(string)
	}
	return nil
}

// args are the values of the query's $n placeholders.
func (c *Check) args(p Parameters) []any {
	values := p.values()
	args := make([]any, len(c.params))
	for i, n := range c.params {
		args[i] = values[n]
	}
	return args
}

// Column types a check's result may have; pgx scans them into text and int64.
var (
	tenantTypes = map[uint32]string{
		pgtype.TextOID: "text", pgtype.VarcharOID: "varchar", pgtype.BPCharOID: "char", pgtype.NameOID: "name",
		pgtype.UUIDOID: "uuid", pgtype.Int2OID: "smallint", pgtype.Int4OID: "integer", pgtype.Int8OID: "bigint",
	}
	findingsTypes = map[uint32]string{
		pgtype.Int2OID: "smallint", pgtype.Int4OID: "integer", pgtype.Int8OID: "bigint", pgtype.NumericOID: "numeric",
	}
)

// checkColumns verifies the result is exactly (tenant, findings) of usable types.
func (c *Check) checkColumns(fields []pgconn.FieldDescription) error {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	if len(fields) != 2 || names[0] != "tenant" || names[1] != "findings" {
		return &QueryError{Check: c.Name, Source: c.Source, Problem: fmt.Sprintf(
			"returns the columns (%s): it must return exactly (tenant, findings), as in SELECT tenant_id::text AS tenant, count(*) AS findings ... GROUP BY tenant_id",
			strings.Join(names, ", "))}
	}
	if _, ok := tenantTypes[fields[0].DataTypeOID]; !ok {
		return &QueryError{Check: c.Name, Source: c.Source, Problem: fmt.Sprintf(
			"its tenant column has type oid %d: cast it to text (tenant_id::text AS tenant)", fields[0].DataTypeOID)}
	}
	if _, ok := findingsTypes[fields[1].DataTypeOID]; !ok {
		return &QueryError{Check: c.Name, Source: c.Source, Problem: fmt.Sprintf(
			"its findings column has type oid %d: return a whole number (count(*) AS findings, or ...::bigint)", fields[1].DataTypeOID)}
	}
	return nil
}

// Validate prepares every enabled check's query on conn without running it,
// and verifies its parameters bind and its result is (tenant, findings).
// Every bad query is reported, each as a *QueryError, joined; a failure to
// talk to the server is returned at once as a plain error.
func Validate(ctx context.Context, conn *pgx.Conn, checks []Check) error {
	var problems []error
	for i := range checks {
		if checks[i].Disabled {
			continue
		}
		err := validateCheck(ctx, conn, &checks[i])
		var qe *QueryError
		if err != nil && !errors.As(err, &qe) {
			return err
		}
		if err != nil {
			problems = append(problems, err)
		}
	}
	return errors.Join(problems...)
}

func validateCheck(ctx context.Context, conn *pgx.Conn, c *Check) error {
	// The unnamed statement: describes the query and leaves nothing behind.
	sd, err := conn.Prepare(ctx, "", c.sql)
	if err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return fmt.Errorf("validating admin-ops check %s: %w", c.Name, err)
		}
		return &QueryError{Check: c.Name, Source: c.Source, Problem: "does not prepare: " + describePgError(err, c.sql) + fixHint(c), Err: err}
	}
	if len(sd.ParamOIDs) != len(c.params) {
		return &QueryError{Check: c.Name, Source: c.Source, Problem: fmt.Sprintf(
			"uses positional parameters ($1 ...): use the named parameters %s", parameterList())}
	}
	if err := c.checkColumns(sd.Fields); err != nil {
		return err
	}
	args := c.args(Parameters{Now: time.Now(), StaleInvitationAge: time.Hour, ReviewInterval: time.Hour, MinAdmins: 2})
	for j, oid := range sd.ParamOIDs {
		if _, err := conn.TypeMap().Encode(oid, pgtype.BinaryFormatCode, args[j], nil); err != nil {
			return &QueryError{Check: c.Name, Source: c.Source, Problem: fmt.Sprintf(
				"uses @%s where PostgreSQL expects type oid %d: cast it, as in @%s::%s", c.params[j], oid, c.params[j], parameterType(c.params[j])), Err: err}
		}
	}
	return nil
}

func parameterType(name string) string {
	switch name {
	case "now":
		return "timestamptz"
	case "min_admins":
		return "int"
	}
	return "interval"
}

func fixHint(c *Check) string {
	if c.Source == SourceDefault {
		return "; the default query expects the reference SigID schema: override or disable this check in PGCAPACITY_ADMINOPS_QUERIES_FILE"
	}
	return ""
}

// describePgError keeps the server's message and hint, and quotes the line
// the error points at (rewriting placeholders keeps line numbers).
func describePgError(err error, sql string) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	msg := pe.Message
	if pe.Position > 0 {
		runes := []rune(sql)
		if pos := int(pe.Position) - 1; pos < len(runes) {
			before := string(runes[:pos])
			line := strings.Count(before, "\n") + 1
			text := strings.Split(sql, "\n")[line-1]
			msg += fmt.Sprintf(" (line %d: %q)", line, strings.TrimSpace(text))
		}
	}
	if pe.Hint != "" {
		msg += " (hint: " + pe.Hint + ")"
	}
	return msg
}

// interval renders a duration as a PostgreSQL interval with whole days in
// the days field, so "30d" means 30 calendar days as PostgreSQL counts them.
func interval(d time.Duration) pgtype.Interval {
	const day = 24 * time.Hour
	return pgtype.Interval{Days: int32(d / day), Microseconds: (d % day).Microseconds(), Valid: true}
}
