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
//	replace_defaults: false   # true: start from no probe instead of the defaults
//	probes:
//	  - name: session_by_user  # a default of the same name is replaced
//	    table: session         # or schema.table: the table the probe measures
//	    sql: |
//	      SELECT session_id FROM session WHERE tenant_id = $1 AND user_id = …
//	  - name: referral_by_code
//	    disabled: true         # drops that default
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

// Load returns the probes to run: the defaults when path is empty,
// otherwise the defaults changed by the file at path. Every problem is
// reported with the file, the probe's name and line, and the fix.
func Load(path string) ([]Probe, error) {
	if path == "" {
		return Defaults(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the probes file: %w", err)
	}
	probes, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("probes file %s: %w", path, err)
	}
	return probes, nil
}

// Parse applies a probes file's content to the defaults.
func Parse(data []byte) ([]Probe, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not valid: %w (fields: replace_defaults, probes: [{name, table, sql, disabled}])", err)
	}
	var probes []Probe
	if !f.ReplaceDefaults {
		probes = Defaults()
	}
	index := func(name string) int {
		for i, p := range probes {
			if p.Name == name {
				return i
			}
		}
		return -1
	}
	seen := map[string]int{}
	for _, fp := range f.Probes {
		where := fmt.Sprintf("probe %q (line %d)", fp.Name, fp.line)
		if fp.Name == "" {
			where = fmt.Sprintf("the probe on line %d", fp.line)
		}
		if first, dup := seen[fp.Name]; dup && fp.Name != "" {
			return nil, fmt.Errorf("%s: the name is also used on line %d; give each probe its own name", where, first)
		}
		seen[fp.Name] = fp.line
		if fp.Disabled {
			i := index(fp.Name)
			if i < 0 {
				return nil, fmt.Errorf("%s: disabled, but there is no such probe to disable; the defaults are %s", where, defaultNames())
			}
			if fp.SQL != "" || fp.Table != "" {
				return nil, fmt.Errorf("%s: disabled probes take no table or sql; remove them or the disabled flag", where)
			}
			probes = append(probes[:i], probes[i+1:]...)
			continue
		}
		p, err := fp.probe()
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if i := index(p.Name); i >= 0 {
			probes[i] = p
		} else {
			probes = append(probes, p)
		}
	}
	return probes, nil
}

func (fp FileProbe) probe() (Probe, error) {
	p := Probe{Name: fp.Name, SQL: fp.SQL}
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

func defaultNames() string {
	var names []string
	for _, p := range Defaults() {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}
