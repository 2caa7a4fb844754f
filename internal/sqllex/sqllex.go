// Package sqllex splits PostgreSQL SQL text into tokens: words, quoted
// identifiers, string constants, parameters, numbers and punctuation, with
// comments dropped. It knows PostgreSQL's quoting rules (standard and
// escape strings, dollar quotes, nested block comments) so that a keyword
// inside a string or comment is never mistaken for one in the statement.
// It does not parse: callers look at the token sequence.
package sqllex

import (
	"fmt"
	"strings"
)

// Kind is a token's class.
type Kind int

// Token kinds.
const (
	Word        Kind = iota // unquoted keyword or identifier; Value is lower-cased
	QuotedIdent             // "Ident"; Value is the name without quotes
	String                  // '…', E'…', $tag$…$tag$, B'…', X'…', N'…', U&'…'
	Param                   // $1; Value is the number as written
	Number                  // 42, 1.5e3
	Punct                   // any other single character: ( ) , ; . : = < > + - * / …
)

func (k Kind) String() string {
	switch k {
	case Word:
		return "word"
	case QuotedIdent:
		return "quoted identifier"
	case String:
		return "string"
	case Param:
		return "parameter"
	case Number:
		return "number"
	default:
		return "punctuation"
	}
}

// Token is one lexical element.
type Token struct {
	Kind  Kind
	Value string
	Pos   int // byte offset in the input
}

// Error is a lexical error at a byte offset.
type Error struct {
	Pos     int
	Problem string
}

func (e *Error) Error() string { return fmt.Sprintf("at byte %d: %s", e.Pos, e.Problem) }

// Scan tokenizes sql. It fails only on unterminated quotes and comments.
func Scan(sql string) ([]Token, error) {
	var toks []Token
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case isSpace(c):
			i++
		case c == '-' && at(sql, i+1) == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && at(sql, i+1) == '*':
			end, err := blockComment(sql, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '\'':
			end, err := quoted(sql, i, '\'', false)
			if err != nil {
				return nil, err
			}
			toks = append(toks, Token{String, sql[i:end], i})
			i = end
		case c == '"':
			end, err := quoted(sql, i, '"', false)
			if err != nil {
				return nil, err
			}
			toks = append(toks, Token{QuotedIdent, strings.ReplaceAll(sql[i+1:end-1], `""`, `"`), i})
			i = end
		case c == '$':
			tok, end, err := dollar(sql, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, tok)
			i = end
		case isDigit(c) || (c == '.' && isDigit(at(sql, i+1))):
			end := number(sql, i)
			toks = append(toks, Token{Number, sql[i:end], i})
			i = end
		case isIdentStart(c):
			end := i + 1
			for end < len(sql) && isIdentPart(sql[end]) {
				end++
			}
			word := strings.ToLower(sql[i:end])
			// Prefixed string constants and Unicode identifiers.
			switch {
			case word == "e" && at(sql, end) == '\'':
				qend, err := quoted(sql, end, '\'', true)
				if err != nil {
					return nil, err
				}
				toks = append(toks, Token{String, sql[i:qend], i})
				i = qend
				continue
			case (word == "b" || word == "x" || word == "n") && at(sql, end) == '\'':
				qend, err := quoted(sql, end, '\'', false)
				if err != nil {
					return nil, err
				}
				toks = append(toks, Token{String, sql[i:qend], i})
				i = qend
				continue
			case word == "u" && at(sql, end) == '&' && (at(sql, end+1) == '\'' || at(sql, end+1) == '"'):
				q := sql[end+1]
				qend, err := quoted(sql, end+1, q, false)
				if err != nil {
					return nil, err
				}
				kind := String
				if q == '"' {
					kind = QuotedIdent
				}
				toks = append(toks, Token{kind, sql[i:qend], i})
				i = qend
				continue
			}
			toks = append(toks, Token{Word, word, i})
			i = end
		default:
			toks = append(toks, Token{Punct, string(c), i})
			i++
		}
	}
	return toks, nil
}

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Bytes ≥ 0x80 are identifier characters in PostgreSQL (multibyte letters).
func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// blockComment returns the offset after the comment starting at i; block
// comments nest in PostgreSQL.
func blockComment(sql string, i int) (int, error) {
	depth := 0
	for j := i; j < len(sql)-1; j++ {
		switch {
		case sql[j] == '/' && sql[j+1] == '*':
			depth++
			j++
		case sql[j] == '*' && sql[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, &Error{i, "unterminated /* comment"}
}

// quoted returns the offset after the quoted text opening at i with quote
// q; a doubled quote is an escaped one, and backslash escapes apply in E”.
func quoted(sql string, i int, q byte, backslash bool) (int, error) {
	for j := i + 1; j < len(sql); j++ {
		switch sql[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if at(sql, j+1) == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	what := "string"
	if q == '"' {
		what = "quoted identifier"
	}
	return 0, &Error{i, "unterminated " + what}
}

// dollar scans a parameter ($1) or a dollar-quoted string ($tag$…$tag$).
func dollar(sql string, i int) (Token, int, error) {
	j := i + 1
	if isDigit(at(sql, j)) {
		for j < len(sql) && isDigit(sql[j]) {
			j++
		}
		return Token{Param, sql[i+1 : j], i}, j, nil
	}
	// A tag is an identifier without '$'; empty tags are allowed.
	for j < len(sql) && sql[j] != '$' && (isIdentStart(sql[j]) || isDigit(sql[j])) {
		j++
	}
	if at(sql, j) != '$' || (j > i+1 && isDigit(sql[i+1])) {
		return Token{Punct, "$", i}, i + 1, nil
	}
	tag := sql[i : j+1]
	end := strings.Index(sql[j+1:], tag)
	if end < 0 {
		return Token{}, 0, &Error{i, "unterminated dollar-quoted string " + tag}
	}
	stop := j + 1 + end + len(tag)
	return Token{String, sql[i:stop], i}, stop, nil
}

func number(sql string, i int) int {
	j := i
	for j < len(sql) && (isDigit(sql[j]) || sql[j] == '.' || sql[j] == '_') {
		j++
	}
	if c := at(sql, j); c == 'e' || c == 'E' {
		k := j + 1
		if c := at(sql, k); c == '+' || c == '-' {
			k++
		}
		if isDigit(at(sql, k)) {
			j = k
			for j < len(sql) && isDigit(sql[j]) {
				j++
			}
		}
	}
	return j
}
