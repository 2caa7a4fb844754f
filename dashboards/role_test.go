package dashboards

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The dashboards of table figures start on the primary and can show
// standbys: a Role variable (primary by default, standby, All) narrows every
// panel but the ones about every pod (exporter health, the role itself, the
// series it costs), so an HA cluster shows each table once.
func TestDashboardsDefaultToThePrimary(t *testing.T) {
	everyPod := map[string][]string{
		UIDOverview: {"Exporter up", "Collectors", "Server role", "Series published per family"},
	}
	files, boards := rendered(t, defaultOptions(t))
	for i, d := range boards {
		if !slices.Contains([]string{UIDOverview, UIDTable, UIDLatency}, d.UID) {
			continue
		}
		data, err := Marshal(files[i].Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Type    string `json:"type"`
					Query   string `json:"query"`
					Current struct {
						Value any `json:"value"`
					} `json:"current"`
					IncludeAll bool   `json:"includeAll"`
					AllValue   string `json:"allValue"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, v := range raw.Templating.List {
			if v.Name != "role" {
				continue
			}
			found = true
			if v.Type != "custom" || v.Query != rolePrimary+","+roleStandby || v.Current.Value != rolePrimary || !v.IncludeAll || v.AllValue != ".+" {
				t.Errorf("%s: role variable %+v: want custom %s,%s starting on %s, with All", d.UID, v, rolePrimary, roleStandby, rolePrimary)
			}
		}
		if !found {
			t.Errorf("%s: no role variable", d.UID)
		}
		for _, p := range d.AllPanels() {
			if p.Type == "row" || slices.Contains(everyPod[d.UID], p.Title) {
				continue
			}
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `pgcapacity_server_role_info{`) || !strings.Contains(tg.Expr, inRole) {
					t.Errorf("%s: panel %q query %s is not narrowed by $role: %s", d.UID, p.Title, tg.RefID, tg.Expr)
				}
			}
		}
	}
}
