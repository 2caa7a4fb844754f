package probes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is the probes file (PGCAPACITY_PROBES_FILE):
//
//	replace_defaults: false   # true: no derived probes, only these
//	probes:
//	  - name: session_by_user  # replaces the derived probe of its table
//	    table: session         # or schema.table: the table the probe measures
//	    sql: |
//	      SELECT session_id FROM session WHERE tenant_id = $1 AND user_id = …
//	  - name: referral_redemption
//	    disabled: true         # drops the derived probe of that name
type File struct {
	ReplaceDefaults bool        `yaml:"replace_defaults"`
	Probes          []FileProbe `yaml:"probes"`
}

// FileProbe is one entry of the probes file.
type FileProbe struct {
	Name     string `yaml:"name"`
	Table    string `yaml:"table"`
	SQL      string `yaml:"sql"`
	Disabled bool   `yaml:"disabled"`

	line int
}

// UnmarshalYAML keeps the entry's line for error messages.
// node.Decode does not inherit the decoder's KnownFields, so the keys are
// checked here.
func (p *FileProbe) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.MappingNode {
		for i := 0; i < len(node.Content); i += 2 {
			switch k := node.Content[i]; k.Value {
			case "name", "table", "sql", "disabled":
			default:
				return fmt.Errorf("line %d: field %s not found: a probe has name, table, sql and disabled", k.Line, k.Value)
			}
		}
	}
	type plain FileProbe
	var v plain
	if err := node.Decode(&v); err != nil {
		return err
	}
	*p = FileProbe(v)
	p.line = node.Line
	return nil
}

// Set is what the probes file asks for.
type Set struct {
	// File is the probes file's path; empty: none.
	File string
	// Probes are the file's probes.
	Probes []Probe
	// Derive: every watched hot table without a probe of its own in Probes
	// gets one derived from its definition (replace_defaults: false).
	Derive bool
	// Disabled are derived probes the file drops, by name.
	Disabled []Disabled
}

// Disabled is a probes file entry that drops a derived probe.
type Disabled struct {
	Name string
	line int
}

// Load reads the probes file at path; empty path: no file, derived probes
// only. Every problem is reported with the file, the probe's name and line,
// and the fix.
func Load(path string) (Set, error) {
	if path == "" {
		return Set{Derive: true}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Set{}, fmt.Errorf("reading the probes file: %w", err)
	}
	set, err := Parse(data)
	if err != nil {
		return Set{}, fmt.Errorf("probes file %s: %w", path, err)
	}
	set.File = path
	return set, nil
}

// Parse reads a probes file's content.
func Parse(data []byte) (Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Set{}, fmt.Errorf("not valid: %w (fields: replace_defaults, probes: [{name, table, sql, disabled}])", err)
	}
	set := Set{Derive: !f.ReplaceDefaults}
	seen := map[string]int{}
	for _, fp := range f.Probes {
		where := fp.where()
		if first, dup := seen[fp.Name]; dup && fp.Name != "" {
			return Set{}, fmt.Errorf("%s: the name is also used on line %d; give each probe its own name", where, first)
		}
		seen[fp.Name] = fp.line
		if fp.Disabled {
			if fp.SQL != "" || fp.Table != "" {
				return Set{}, fmt.Errorf("%s: disabled probes take no table or sql; remove them or the disabled flag", where)
			}
			if f.ReplaceDefaults {
				return Set{}, fmt.Errorf("%s: disabled, but replace_defaults: true already drops every derived probe; remove the entry", where)
			}
			if !validName.MatchString(fp.Name) {
				return Set{}, fmt.Errorf("%s: disabled needs the name of a derived probe (`pgcapacity probes` lists them)", where)
			}
			set.Disabled = append(set.Disabled, Disabled{Name: fp.Name, line: fp.line})
			continue
		}
		p, err := fp.probe()
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			return Set{}, fmt.Errorf("%s: %w", where, err)
		}
		set.Probes = append(set.Probes, p)
	}
	return set, nil
}

func (fp FileProbe) where() string {
	if fp.Name == "" {
		return fmt.Sprintf("the probe on line %d", fp.line)
	}
	return fmt.Sprintf("probe %q (line %d)", fp.Name, fp.line)
}

func (fp FileProbe) probe() (Probe, error) {
	p := Probe{Name: fp.Name, SQL: fp.SQL, Origin: OriginFile, line: fp.line}
	table := strings.TrimSpace(fp.Table)
	switch parts := strings.Split(table, "."); len(parts) {
	case 1:
		p.Table = parts[0]
	case 2:
		p.Schema, p.Table = parts[0], parts[1]
		if p.Schema == "" || p.Table == "" {
			return p, fmt.Errorf("table %q: write table or schema.table", fp.Table)
		}
	default:
		return p, fmt.Errorf("table %q has more than one dot: write table or schema.table", fp.Table)
	}
	return p, nil
}
