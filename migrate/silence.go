package migrate

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
)

// Silencer creates Alertmanager silences for a table's capacity alerts
// during a swap's maintenance window.
type Silencer struct {
	client    *amclient.AlertmanagerAPI
	createdBy string
}

// NewSilencer talks to the Alertmanager at base (such as
// http://alertmanager:9093, optionally with a path prefix).
func NewSilencer(base, createdBy string) (*Silencer, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("PGCAPACITY_ALERTMANAGER_URL %q is not an http(s) URL such as http://alertmanager:9093", base)
	}
	cfg := amclient.DefaultTransportConfig().WithHost(u.Host).WithBasePath(strings.TrimSuffix(u.Path, "/") + "/api/v2/").WithSchemes([]string{u.Scheme})
	return &Silencer{client: amclient.NewHTTPClientWithConfig(strfmt.Default, cfg), createdBy: createdBy}, nil
}

// Silence silences the alerts whose schema and table labels name the table
// (the capacity-planning, autovacuum and latency alerts carry them) from
// now until until.
func (s *Silencer) Silence(ctx context.Context, schema, table string, until time.Time) (string, error) {
	f := false
	str := func(v string) *string { return &v }
	start := strfmt.DateTime(time.Now())
	end := strfmt.DateTime(until)
	params := silence.NewPostSilencesParams().WithContext(ctx).WithSilence(&models.PostableSilence{Silence: models.Silence{
		Matchers: models.Matchers{
			{Name: str("schema"), Value: str(schema), IsRegex: &f},
			{Name: str("table"), Value: str(table), IsRegex: &f},
		},
		StartsAt:  &start,
		EndsAt:    &end,
		CreatedBy: str(s.createdBy),
		Comment:   str(fmt.Sprintf("pgcapacity migrate swap of %s.%s: partition count change in its maintenance window", schema, table)),
	}})
	ok, err := s.client.Silence.PostSilences(params)
	if err != nil {
		return "", fmt.Errorf("posting the silence: %w", err)
	}
	return ok.GetPayload().SilenceID, nil
}
