package probes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSQL(t *testing.T) {
	tests := []struct {
		name, sql string
		wantErr   string // empty: accepted
	}{
		{"plain select", "SELECT 1 FROM session WHERE tenant_id = $1", ""},
		{"trailing semicolons", "SELECT 1 FROM session WHERE tenant_id = $1;;", ""},
		{"with query", "WITH x AS (SELECT * FROM session WHERE tenant_id = $1) SELECT count(*) FROM x", ""},
		{"parenthesized", "(SELECT 1 FROM session WHERE tenant_id = $1)", ""},
		{"writing keyword in a string", "SELECT 'DELETE FROM x; UPDATE' FROM session WHERE tenant_id = $1", ""},
		{"writing keyword in a comment", "SELECT 1 /* delete; */ FROM session -- update\nWHERE tenant_id = $1", ""},
		{"quoted column named update", `SELECT "update" FROM session WHERE tenant_id = $1`, ""},
		{"fetch first", "SELECT 1 FROM session WHERE tenant_id = $1 FETCH FIRST 1 ROWS ONLY", ""},
		{"empty", "  -- nothing\n", "is empty"},
		{"delete", "DELETE FROM session WHERE tenant_id = $1", `is not a SELECT (it starts with "DELETE")`},
		{"explain", "EXPLAIN SELECT 1 FROM session WHERE tenant_id = $1", `is not a SELECT (it starts with "EXPLAIN")`},
		{"two statements", "SELECT 1 FROM session WHERE tenant_id = $1; DROP TABLE session", "more than one statement"},
		{"data-modifying with", "WITH d AS (DELETE FROM session WHERE tenant_id = $1 RETURNING *) SELECT * FROM d", "contains a DELETE"},
		{"insert in with", "WITH i AS (INSERT INTO t VALUES ($1) RETURNING 1) SELECT 1", "contains an INSERT"},
		{"select into", "SELECT * INTO copy FROM session WHERE tenant_id = $1", "contains INTO"},
		{"for update", "SELECT * FROM session WHERE tenant_id = $1 FOR UPDATE", "contains an UPDATE"},
		{"for key share", "SELECT * FROM session WHERE tenant_id = $1 FOR KEY SHARE", "row lock"},
		{"merge", "WITH m AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE) SELECT $1", "contains a MERGE"},
		{"no tenant parameter", "SELECT 1 FROM session", "does not use $1"},
		{"second parameter", "SELECT 1 FROM session WHERE tenant_id = $1 AND session_id = $2", "uses $2"},
		{"unterminated string", "SELECT 'x FROM session WHERE tenant_id = $1", "unterminated string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSQL(tt.sql)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckSQL refused a read-only SELECT: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("CheckSQL accepted %q", tt.sql)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("CheckSQL error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// examplePath is the SigID example probes file, from this package's directory.
var examplePath = filepath.Join("..", "..", "docs", "examples", "sigid-probes.yaml")

func TestSigIDExampleFileParses(t *testing.T) {
	set, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Derive || len(set.Disabled) != 0 {
		t.Errorf("the example keeps derived probes for the other hot tables: derive %v, disabled %v", set.Derive, set.Disabled)
	}
	seen := map[string]bool{}
	for _, p := range set.Probes {
		if err := p.Validate(); err != nil {
			t.Errorf("example probe %s: %v", p.Name, err)
		}
		if seen[p.Table] {
			t.Errorf("two example probes on %s", p.Table)
		}
		seen[p.Table] = true
	}
	for _, table := range []string{"session", "tenant_membership", "tenant_subject_identifier", "referral"} {
		if !seen[table] {
			t.Errorf("no example probe on hot table %s", table)
		}
	}
}

func names(ps []Probe) string {
	var n []string
	for _, p := range ps {
		n = append(n, p.QualifiedName()+":"+p.Name)
	}
	return strings.Join(n, " ")
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, file string
		want       string // probes as table:name, in order
		derive     bool
		disabled   string
		wantErr    string
	}{
		{"empty file keeps the derived probes", "", "", true, "", ""},
		{"add and disable", `
probes:
  - name: session_by_id
    table: sigid.session
    sql: SELECT 1 FROM sigid.session WHERE tenant_id = $1
  - name: referral
    disabled: true
  - name: redemptions
    table: referral_redemption
    sql: |
      SELECT count(*) FROM referral_redemption WHERE tenant_id = $1
`, "sigid.session:session_by_id referral_redemption:redemptions", true, "referral", ""},
		{"replace the derived probes", `
replace_defaults: true
probes:
  - name: only
    table: t
    sql: SELECT 1 FROM t WHERE tenant_id = $1
`, "t:only", false, "", ""},
		{"a writing probe is refused by name", `
probes:
  - name: ok
    table: t
    sql: SELECT 1 FROM t WHERE tenant_id = $1
  - name: cleanup
    table: t
    sql: DELETE FROM t WHERE tenant_id = $1
`, "", false, "", `probe "cleanup" (line 6): sql: is not a SELECT`},
		{"a hidden second statement is refused by name", `
probes:
  - name: sneaky
    table: t
    sql: "SELECT 1 FROM t WHERE tenant_id = $1; TRUNCATE t"
`, "", false, "", `probe "sneaky" (line 3): sql: holds more than one statement`},
		{"unknown field", `
probes:
  - name: x
    tabel: t
    sql: SELECT 1 FROM t WHERE tenant_id = $1
`, "", false, "", "field tabel not found"},
		{"duplicate name", `
probes:
  - {name: a, table: t, sql: "SELECT 1 FROM t WHERE tenant_id = $1"}
  - {name: a, table: u, sql: "SELECT 1 FROM u WHERE tenant_id = $1"}
`, "", false, "", `probe "a" (line 4): the name is also used on line 3`},
		{"disable with replace_defaults", `
replace_defaults: true
probes:
  - {name: nope, disabled: true}
`, "", false, "", `probe "nope" (line 4): disabled, but replace_defaults: true already drops`},
		{"disable with a table", `
probes:
  - {name: session, table: session, disabled: true}
`, "", false, "", `probe "session" (line 3): disabled probes take no table or sql`},
		{"missing table", `
probes:
  - {name: a, sql: "SELECT 1 FROM t WHERE tenant_id = $1"}
`, "", false, "", `probe "a" (line 3): table is missing`},
		{"bad table name", `
probes:
  - {name: a, table: a.b.c, sql: "SELECT 1 FROM t WHERE tenant_id = $1"}
`, "", false, "", "more than one dot"},
		{"bad probe name", `
probes:
  - {name: "a b", table: t, sql: "SELECT 1 FROM t WHERE tenant_id = $1"}
`, "", false, "", `name "a b": use letters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got.Probes) != tt.want {
				t.Fatalf("probes:\n got %s\nwant %s", names(got.Probes), tt.want)
			}
			var disabled []string
			for _, d := range got.Disabled {
				disabled = append(disabled, d.Name)
			}
			if got.Derive != tt.derive || strings.Join(disabled, " ") != tt.disabled {
				t.Fatalf("derive %v, disabled %v; want %v, %q", got.Derive, disabled, tt.derive, tt.disabled)
			}
			for _, p := range got.Probes {
				if p.Origin != OriginFile {
					t.Errorf("probe %s: origin %q, want %q", p.Name, p.Origin, OriginFile)
				}
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "probes.yaml")
	if err := os.WriteFile(path, []byte("probes:\n  - {name: w, table: t, sql: \"UPDATE t SET x = 1 WHERE tenant_id = $1\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "probes file "+path+`: probe "w" (line 2)`) {
		t.Fatalf("Load error = %v, want the file and the probe named", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading the probes file") {
		t.Fatalf("Load of a missing file: %v", err)
	}
	set, err := Load("")
	if err != nil || len(set.Probes) != 0 || !set.Derive {
		t.Fatalf("Load(\"\") = %+v, %v; want derived probes only", set, err)
	}
}
