package main

import (
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/collector/statements"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/migrate"
)

// selection is which tables the collectors watch.
func selection(cfg config.Config) collector.Selection {
	return collector.Selection{Tables: cfg.Tables, HotTables: cfg.HotTables, TenantColumn: cfg.TenantColumn}
}

// buildCollectors lists every collector serve runs, each on its own interval.
func buildCollectors(env *environment) ([]collector.Collector, error) {
	cfg := env.cfg
	sel := selection(cfg)
	cs := []collector.Collector{
		collector.NewStats(sel, cfg.StatsInterval.D(), false).WithDetail(collector.DetailFromConfig(cfg)),
		collector.NewSizes(sel, cfg.SizesInterval.D(), false).WithDetail(collector.DetailFromConfig(cfg)),
		migrate.NewCollector(cfg.MigrationsInterval.D()),
	}
	pr, err := probes.NewFromConfig(cfg, env.logger) // refuses a bad probes file at start
	if err != nil {
		return nil, err
	}
	cs = append(cs, pr, statements.NewFromConfig(cfg, env.logger))
	ao, err := adminops.New(cfg, env.logger) // refuses a bad admin-ops queries file at start
	if err != nil {
		return nil, err
	}
	cs = append(cs, ao)
	return cs, nil
}
