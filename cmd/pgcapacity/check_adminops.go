package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
)

// adminOpsReportTenants is how many worst tenants per check `check` prints.
const adminOpsReportTenants = 5

// sampleAdminOps runs one round of the admin-operations checks. A bad
// override file is an error; a check that fails (such as a default query
// on another schema) is reported in its line, beside the capacity report.
func sampleAdminOps(ctx context.Context, cfg config.Config, pool *pgxpool.Pool) (adminops.Result, error) {
	c, err := adminops.New(cfg, nil)
	if err != nil {
		return adminops.Result{}, err
	}
	if err := c.Validate(ctx, pool); err != nil {
		var qe *adminops.QueryError
		if errors.As(err, &qe) {
			return adminops.Result{}, err
		}
		return adminops.Result{}, fmt.Errorf("validating the admin-ops queries: %w", err)
	}
	res, _ := c.Run(ctx, pool) // failed checks carry their error in res
	return res, nil
}

func writeAdminOps(w io.Writer, res adminops.Result) {
	fmt.Fprintln(w)
	_ = adminops.WriteReport(w, res, adminOpsReportTenants)
}
