package sqllex

import (
	"errors"
	"fmt"
	"strings"
)

// writing lists the words that only occur in a SELECT when it writes or
// locks: a data-modifying WITH (INSERT, UPDATE, DELETE, MERGE), SELECT INTO,
// and FOR UPDATE / FOR [NO KEY|KEY] SHARE. A column of that name must be
// double-quoted.
var writing = map[string]string{
	"insert": "an INSERT",
	"update": "an UPDATE (or FOR UPDATE)",
	"delete": "a DELETE",
	"merge":  "a MERGE",
	"into":   "INTO (SELECT INTO creates a table)",
	"share":  "a row lock (FOR SHARE)",
}

// ReadOnlySelect accepts a single SELECT (or WITH … SELECT, or a
// parenthesized one) that neither writes nor locks rows, and returns its
// tokens without trailing semicolons. Its errors complete "the query …".
// It errs on the side of refusing: a column named like a writing keyword
// must be double-quoted.
func ReadOnlySelect(sql string) ([]Token, error) {
	toks, err := Scan(sql)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %w", err)
	}
	for len(toks) > 0 && toks[len(toks)-1].Kind == Punct && toks[len(toks)-1].Value == ";" {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 {
		return nil, errors.New("is empty")
	}
	first := toks[0]
	if !(first.Kind == Word && (first.Value == "select" || first.Value == "with")) && !(first.Kind == Punct && first.Value == "(") {
		end := len(sql)
		if len(toks) > 1 {
			end = toks[1].Pos
		}
		return nil, fmt.Errorf("is not a SELECT (it starts with %q)", strings.TrimSpace(sql[first.Pos:end]))
	}
	for _, t := range toks {
		switch {
		case t.Kind == Punct && t.Value == ";":
			return nil, fmt.Errorf("holds more than one statement (a ';' at byte %d)", t.Pos)
		case t.Kind == Word:
			if what, bad := writing[t.Value]; bad {
				return nil, fmt.Errorf("is not a plain SELECT: it contains %s at byte %d (double-quote a column of that name)", what, t.Pos)
			}
		}
	}
	return toks, nil
}
