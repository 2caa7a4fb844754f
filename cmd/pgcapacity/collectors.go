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

// buildCollectors lists the collectors PGCAPACITY_COLLECTORS names, each
// on its own interval; a collector left out is not built at all.
func buildCollectors(env *environment) ([]collector.Collector, error) {
	cfg := env.cfg
	sel := selection(cfg)
	build := map[string]func() (collector.Collector, error){
		"stats": func() (collector.Collector, error) {
			return collector.NewStats(sel, cfg.StatsInterval.D(), false).WithDetail(collector.DetailFromConfig(cfg)), nil
		},
		"sizes": func() (collector.Collector, error) {
			return collector.NewSizes(sel, cfg.SizesInterval.D(), false).WithDetail(collector.DetailFromConfig(cfg)), nil
		},
		"migrations": func() (collector.Collector, error) { return migrate.NewCollector(cfg.MigrationsInterval.D()), nil },
		probes.Name: func() (collector.Collector, error) {
			return probes.NewFromConfig(cfg, env.logger) // refuses a bad probes file at start
		},
		statements.Name: func() (collector.Collector, error) { return statements.NewFromConfig(cfg, env.logger), nil },
		adminops.Name: func() (collector.Collector, error) {
			return adminops.New(cfg, env.logger) // refuses a bad admin-ops queries file at start
		},
	}
	var cs []collector.Collector
	for _, name := range config.CollectorNames() {
		if !cfg.CollectorEnabled(name) {
			continue
		}
		c, err := build[name]()
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}
