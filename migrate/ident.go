package migrate

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// maxIdentifierBytes is PostgreSQL's NAMEDATALEN-1.
const maxIdentifierBytes = 63

// qi quotes a possibly schema-qualified identifier.
func qi(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// ql quotes a string literal for the few utility statements (COMMENT,
// reloptions) that take no bound parameters. The connection is checked to
// run with standard_conforming_strings on, where doubling quotes is enough.
func ql(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// truncateIdentifier cuts a name to PostgreSQL's limit on a rune boundary,
// as the server would.
func truncateIdentifier(s string) string { return truncateTo(s, maxIdentifierBytes) }

func truncateTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	b := []byte(s)[:n]
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// shadowOldName is the name an object of the original table carries while
// the original is retained (after the swap); shadowNewName is the name of an
// object of the new table before the swap.
func shadowOldName(id int64, name string) string {
	return truncateIdentifier(fmt.Sprintf("o%d_%s", id, name))
}

func shadowNewName(id int64, name string) string {
	return truncateIdentifier(fmt.Sprintf("n%d_%s", id, name))
}

// partitionName is the name of new partition i: the original table's
// naming pattern <table>_p<i>, with the table name cut so the suffix fits.
func partitionName(table string, i int) string {
	suffix := fmt.Sprintf("_p%d", i)
	return truncateTo(table, maxIdentifierBytes-len(suffix)) + suffix
}

func logTableName(id int64) string        { return fmt.Sprintf("m%d_log", id) }
func captureFunctionName(id int64) string { return fmt.Sprintf("m%d_capture", id) }
func guardFunctionName(id int64) string   { return fmt.Sprintf("m%d_no_truncate", id) }
func captureTriggerName(id int64) string  { return fmt.Sprintf("pgcapacity_m%d_capture", id) }
func guardTriggerName(id int64) string    { return fmt.Sprintf("pgcapacity_m%d_no_truncate", id) }

// StateSchema is where migrations keep their state, logs and functions.
const StateSchema = "pgcapacity"

var reloptionKey = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// reloptionsClause renders catalog reloptions ("key=value") as a WITH clause.
func reloptionsClause(opts []string) (string, error) {
	if len(opts) == 0 {
		return "", nil
	}
	parts := make([]string, 0, len(opts))
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok || !reloptionKey.MatchString(k) {
			return "", fmt.Errorf("unexpected storage parameter %q", o)
		}
		parts = append(parts, k+" = "+ql(v))
	}
	return " WITH (" + strings.Join(parts, ", ") + ")", nil
}

// dollarQuote wraps a function body in a dollar quote whose tag the body
// does not contain.
func dollarQuote(body string) string {
	tag := "$pgc$"
	for i := 0; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$pgc%d$", i)
	}
	return tag + body + tag
}
