package collector

// Watches reports whether the selection watches the partitioned table
// schema.name of the given strategy (hash, list or range): what the probes
// derive their defaults from and match hot-table patterns against.
func (s Selection) Watches(schema, name, strategy string) bool {
	return s.watched(schema, name, strategy)
}
