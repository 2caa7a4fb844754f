package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func testSnapshot(t *testing.T) *Snapshot {
	t.Helper()
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "pgcapacity_probe_duration_seconds", Help: "h", Buckets: []float64{0.001, 0.01},
		NativeHistogramBucketFactor: 1.1,
	})
	hist.Observe(0.005)
	skew, err := renderMetrics(nil, []prometheus.Metric{
		prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, 6.5, "public", "session"),
		prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, 1.5, "public", "referral"),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(hist)
	own, err := renderGatherer(nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := assemble(nil, []rendered{own, skew})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Series != 3 {
		t.Errorf("%d series, want 3", snap.Series)
	}
	return snap
}

func TestSnapshotServesNegotiatedFormats(t *testing.T) {
	snap := testSnapshot(t)
	tests := []struct {
		name, accept, encoding string
		wantProto, wantGzip    bool
	}{
		{"text", "text/plain", "", false, false},
		{"text gzipped", "", "gzip", false, true},
		{"protobuf for native histograms", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "", true, false},
		{"protobuf gzipped", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "gzip, deflate", true, true},
		{"gzip refused", "", "gzip;q=0", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept", tc.accept)
			req.Header.Set("Accept-Encoding", tc.encoding)
			rec := httptest.NewRecorder()
			snap.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tc.wantGzip {
				t.Fatalf("gzip %v, want %v", got, tc.wantGzip)
			}
			if tc.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			format := expfmt.ResponseFormat(rec.Header())
			if (format.FormatType() == expfmt.TypeProtoDelim) != tc.wantProto {
				t.Fatalf("content type %s", rec.Header().Get("Content-Type"))
			}
			dec := expfmt.NewDecoder(bytes.NewReader(body), format)
			families := map[string]*dto.MetricFamily{}
			for {
				var mf dto.MetricFamily
				if err := dec.Decode(&mf); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				families[mf.GetName()] = &mf
			}
			skew := families["pgcapacity_table_partition_skew_ratio"]
			if skew == nil || len(skew.GetMetric()) != 2 || skew.GetMetric()[1].GetGauge().GetValue() != 6.5 {
				t.Fatalf("skew family %v", skew)
			}
			h := families["pgcapacity_probe_duration_seconds"].GetMetric()[0].GetHistogram()
			if tc.wantProto && h.GetSchema() == 0 && len(h.GetPositiveSpan()) == 0 {
				t.Error("the protobuf exposition lost the native histogram")
			}
			if h.GetSampleCount() != 1 {
				t.Errorf("histogram count %d", h.GetSampleCount())
			}
		})
	}
}

func TestPartitionSeriesRenderWithTheirLabels(t *testing.T) {
	stats := NewStats(Selection{}, time.Minute, true)
	metrics := stats.metrics(Server{SharedBuffersBytes: 1024}, []Table{{
		Schema: "public", Name: "session", Strategy: "hash", PartitionKey: "tenant_id",
		Partitions: []Partition{{Name: "session_p0", LiveRows: 5, DeadRows: 1}, {Name: "session_\xffp1", LiveRows: 7}},
	}})
	r, err := renderMetrics(nil, metrics)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := assemble(nil, []rendered{r})
	if err != nil {
		t.Fatal(err)
	}
	text, err := snap.Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`pgcapacity_partition_live_rows{partition="session_p0",schema="public",table="session"} 5`,
		`pgcapacity_partition_dead_rows{partition="session_p0",schema="public",table="session"} 1`,
		`pgcapacity_partition_live_rows{partition="session_` + "\uFFFD" + `p1",schema="public",table="session"} 7`,
		`pgcapacity_table_partition_live_rows_max{schema="public",table="session"} 7`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
}

// TestRendersReuseTheirWriters: writers a pool hands out again start
// clean, so every snapshot holds only its own round's series.
func TestRendersReuseTheirWriters(t *testing.T) {
	var zips zipPool
	for _, table := range []string{"session", "referral", "tenant_membership"} {
		r, err := renderMetrics(&zips, []prometheus.Metric{prometheus.MustNewConstMetric(descSkew, prometheus.GaugeValue, 2, "public", table)})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := assemble(&zips, []rendered{r})
		if err != nil {
			t.Fatal(err)
		}
		text, err := snap.Text()
		if err != nil {
			t.Fatal(err)
		}
		want := `pgcapacity_table_partition_skew_ratio{schema="public",table="` + table + `"} 2`
		if got := strings.Count(string(text), "pgcapacity_table_partition_skew_ratio{"); got != 1 || !strings.Contains(string(text), want) {
			t.Fatalf("snapshot of %s:\n%s\nwant only %s", table, text, want)
		}
	}
	if n := len(zips.idle); n == 0 || n > maxIdleZips {
		t.Errorf("%d idle writers after the renders, want 1 to %d", n, maxIdleZips)
	}
}
