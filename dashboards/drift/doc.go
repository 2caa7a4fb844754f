// Package drift holds the test that keeps the dashboards' queries honest:
// every metric they name is emitted by a live `pgcapacity serve` over the
// seeded SigID schema, or is a recording rule in rules/. It has no code of
// its own; it lives apart so that the dashboards' other tests run without
// PostgreSQL.
package drift
