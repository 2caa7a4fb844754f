package statements

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestAttribute(t *testing.T) {
	public, other, referral := Table{"public", "session"}, Table{"sigid", "session"}, Table{"public", "referral"}
	nm := newNames()
	nm.add("public", "session", public)
	nm.add("public", "session_p3", public)
	nm.add("public", "active_session", public)
	nm.add("sigid", "session", other)
	nm.add("public", "referral", referral)
	nm.add("public", "Referral Codes", referral)

	tests := []struct {
		name, query string
		want        []Table
	}{
		{"bare name matches every schema", "SELECT * FROM session WHERE tenant_id = $1", []Table{public, other}},
		{"qualified name matches its schema", "SELECT * FROM sigid.session s WHERE s.tenant_id = $1", []Table{other}},
		{"quoted qualified name", `SELECT * FROM "public"."session"`, []Table{public}},
		{"unquoted names fold to lower case", "SELECT * FROM PUBLIC.SESSION", []Table{public}},
		{"quoted names keep their case", `SELECT * FROM "Session"`, nil},
		{"quoted name with a space", `SELECT * FROM "Referral Codes"`, []Table{referral}},
		{"partition counts for its table", "SELECT count(*) FROM session_p3", []Table{public}},
		{"view counts for its table", "SELECT * FROM active_session WHERE tenant_id = $1", []Table{public}},
		{"two tables", "UPDATE referral r SET code = $1 FROM public.session s WHERE s.tenant_id = r.tenant_id", []Table{referral, public}},
		{"string and comment are not names", "/* session */ SELECT 'referral' -- session\nFROM tenant", nil},
		{"column after a qualifier is not a table", "SELECT t.session FROM tenant t", nil},
		{"schema-qualified column keeps its table", "SELECT public.session.tenant_id FROM public.session", []Table{public}},
		{"EXPLAIN is not workload (the probes run that way)", "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) SELECT * FROM session WHERE tenant_id = $1", nil},
		{"unreadable text", "SELECT * FROM session WHERE x = 'unterminated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nm.Attribute(tt.query)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Attribute(%q) = %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}

// BenchmarkAttribute shows the per-statement cost of attribution, which
// MaxNewPerRound multiplies at most once per round.
func BenchmarkAttribute(b *testing.B) {
	nm := newNames()
	for _, table := range []string{"session", "tenant_membership", "tenant_subject_identifier", "referral", "referral_redemption"} {
		for i := range 1024 {
			nm.add("public", fmt.Sprintf("%s_p%d", table, i), Table{"public", table})
		}
		nm.add("public", table, Table{"public", table})
	}
	query := "SELECT s.session_id, s.user_id, m.role FROM session s JOIN tenant_membership m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id WHERE s.tenant_id = $1 AND s.expires_at > $2 " + strings.Repeat("AND s.user_agent <> $3 ", 20)
	b.ReportAllocs()
	for b.Loop() {
		if len(nm.Attribute(query)) != 2 {
			b.Fatal("wrong attribution")
		}
	}
}
