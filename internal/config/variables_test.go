package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// Every threshold's variable, as ThresholdVariable names it, is the one
// envconfig reads: it sets the field.
func TestThresholdVariableIsWhatEnvconfigReads(t *testing.T) {
	var usage bytes.Buffer
	if err := Usage(&usage); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[Thresholds]()
	for i := range typ.NumField() {
		field := typ.Field(i).Name
		variable, def, ok := ThresholdVariable(field)
		if !ok || !strings.Contains(usage.String(), variable+" ") || def == "" {
			t.Errorf("%s: variable %q default %q not in the usage", field, variable, def)
		}
	}
	if v, d, _ := ThresholdVariable("XIDAgeCritical"); v != "PGCAPACITY_XID_AGE_CRITICAL" || d != "1500000000" {
		t.Errorf("XIDAgeCritical: %s %s", v, d)
	}
	if _, _, ok := ThresholdVariable("Nope"); ok {
		t.Error("a field that does not exist has a variable")
	}
}
