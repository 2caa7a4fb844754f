package config

import (
	"reflect"
	"regexp"
	"strings"
)

// envconfig's split_words: "XIDAgeCritical" is XID_AGE_CRITICAL.
var (
	wordsRegexp   = regexp.MustCompile("([^A-Z]+|[A-Z]+[^A-Z]+|[A-Z]+)")
	acronymRegexp = regexp.MustCompile("([A-Z]+)([A-Z][^A-Z]+)")
)

// ThresholdVariable returns the PGCAPACITY_* variable that sets the
// Thresholds field named field and its default, both read from the field's
// tags, the one place they are declared. ok is false for no such field.
func ThresholdVariable(field string) (variable, def string, ok bool) {
	f, ok := reflect.TypeFor[Thresholds]().FieldByName(field)
	if !ok {
		return "", "", false
	}
	name := f.Tag.Get("envconfig")
	if name == "" {
		var words []string
		for _, w := range wordsRegexp.FindAllString(f.Name, -1) {
			if m := acronymRegexp.FindStringSubmatch(w); m != nil {
				words = append(words, m[1], m[2])
				continue
			}
			words = append(words, w)
		}
		name = strings.Join(words, "_")
	}
	return Prefix + "_" + strings.ToUpper(name), f.Tag.Get("default"), true
}
