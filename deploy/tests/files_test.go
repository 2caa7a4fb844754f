package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// checkedElsewhere are the kinds of file under deploy/ that other tests
// exercise: they run the SQL and shell scripts on PostgreSQL, verify the
// systemd unit and its environment file, and compile the Go.
var checkedElsewhere = map[string]string{
	".sql":     "privilege_test.go runs it with psql",
	".sh":      "privilege_test.go runs it as the postgres image does",
	".service": "systemd_test.go",
	".env":     "systemd_test.go",
	".go":      "go vet and go test",
	".mod":     "go mod tidy -diff in scripts/test.sh (tests/go.mod)",
	".sum":     "go mod verify when the tests build (tests/go.sum)",
}

// TestEveryFileParses: every YAML document and JSON file under deploy/
// parses (duplicate keys included) and is not empty; a file of another
// kind must be one another test checks.
func TestEveryFileParses(t *testing.T) {
	counts := map[string]int{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := filepath.Ext(path)
		counts[ext]++
		switch ext {
		case ".yml", ".yaml":
			dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
			docs := 0
			for {
				var doc yaml.Node
				err := dec.Decode(&doc)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Errorf("%s: %v", path, err)
					break
				}
				docs++
				if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode || len(doc.Content[0].Content) == 0 {
					t.Errorf("%s: document %d is not a non-empty mapping", path, docs)
				}
				// Decoding into a map reports keys defined twice.
				var m map[string]any
				if err := doc.Decode(&m); err != nil {
					t.Errorf("%s: document %d: %v", path, docs, err)
				}
			}
			if docs == 0 {
				t.Errorf("%s holds no YAML document", path)
			}
		case ".json":
			var v map[string]any
			dec := json.NewDecoder(bytes.NewReader(readFile(t, path)))
			if err := dec.Decode(&v); err != nil || len(v) == 0 {
				t.Errorf("%s: not a JSON object: %v", path, err)
			} else if dec.More() {
				t.Errorf("%s: more than one JSON value", path)
			}
		default:
			if _, ok := checkedElsewhere[ext]; !ok {
				t.Errorf("%s: no test checks %q files: add a check here", path, ext)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if counts[".yml"]+counts[".yaml"] < 15 {
		t.Errorf("found only %d YAML files under deploy/: is the walk in the right place? %v", counts[".yml"]+counts[".yaml"], counts)
	}
	t.Logf("files under deploy/ by kind: %v", counts)
}
