package sqllex

import (
	"strings"
	"testing"
)

// render shows tokens compactly: kind initial and value.
func render(toks []Token) string {
	var parts []string
	for _, t := range toks {
		parts = append(parts, t.Kind.String()[:1]+":"+t.Value)
	}
	return strings.Join(parts, " ")
}

func TestScan(t *testing.T) {
	tests := []struct {
		name, sql, want string
	}{
		{"words fold to lower case", "SELECT a FROM T", "w:select w:a w:from w:t"},
		{"quoted identifiers keep case and unescape", `SELECT "Del""ete" FROM "x"`, `w:select q:Del"ete w:from q:x`},
		{"keyword in a string stays a string", "SELECT 'DELETE; x''y' AS s", "w:select s:'DELETE; x''y' w:as w:s"},
		{"line comment dropped", "SELECT 1 -- DELETE FROM t;\n, 2", "w:select n:1 p:, n:2"},
		{"nested block comment dropped", "SELECT /* a /* DELETE */ b; */ 1", "w:select n:1"},
		{"escape string with backslash quote", `SELECT E'it\'s; DELETE'`, `w:select s:E'it\'s; DELETE'`},
		{"dollar-quoted string", "SELECT $x$ ; DELETE $x$, $$a$$", "w:select s:$x$ ; DELETE $x$ p:, s:$$a$$"},
		{"parameters", "WHERE a = $1 AND b=$12", "w:where w:a p:= p:1 w:and w:b p:= p:12"},
		{"dollar inside identifier", "SELECT a$b FROM t", "w:select w:a$b w:from w:t"},
		{"numbers", "SELECT 1.5e3, .5, 10", "w:select n:1.5e3 p:, n:.5 p:, n:10"},
		{"unicode identifier", `SELECT U&"d\0061t" FROM t`, `w:select q:U&"d\0061t" w:from w:t`},
		{"prefixed strings", "SELECT B'101', X'ff', N'x'", "w:select s:B'101' p:, s:X'ff' p:, s:N'x'"},
		{"cast and semicolon", "SELECT a::uuid;", "w:select w:a p:: p:: w:uuid p:;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toks, err := Scan(tt.sql)
			if err != nil {
				t.Fatal(err)
			}
			// Params render by kind initial "p" too; disambiguate by value.
			if got := render(toks); got != tt.want {
				t.Errorf("Scan(%q)\n got %s\nwant %s", tt.sql, got, tt.want)
			}
		})
	}
}

func TestScanKindsOfParams(t *testing.T) {
	toks, err := Scan("a = $1")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 || toks[2].Kind != Param || toks[2].Value != "1" || toks[2].Pos != 4 {
		t.Fatalf("got %+v, want a Param token with value 1 at 4", toks)
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"SELECT 'abc", "unterminated string"},
		{`SELECT "abc`, "unterminated quoted identifier"},
		{"SELECT /* a /* b */", "unterminated /* comment"},
		{"SELECT $q$ abc", "unterminated dollar-quoted string $q$"},
		{`SELECT E'abc\'`, "unterminated string"},
	}
	for _, tt := range tests {
		_, err := Scan(tt.sql)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Scan(%q) error = %v, want %q", tt.sql, err, tt.want)
		}
	}
}
