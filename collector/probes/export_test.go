package probes

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SampledTenants runs one tenant refresh for schema.table and returns the
// number of tenant ids found per partition.
func SampledTenants(ctx context.Context, pool *pgxpool.Pool, schema, table string) (map[string]int, error) {
	name := tableName{schema, table}
	targets, err := loadTargets(ctx, pool, []tableName{name}, "tenant_id", tenantBudget{DefaultTenantsPerPartition, DefaultTenantsPerTable})
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range targets[name].partitions {
		out[p.name] = len(p.tenants)
	}
	return out, nil
}
