package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var (
	textFormat  = expfmt.NewFormat(expfmt.TypeTextPlain)
	protoFormat = expfmt.NewFormat(expfmt.TypeProtoDelim)
)

// rendered is one source's metric families in both exposition formats,
// gzipped: about a tenth of the plain size, which is what keeps thousands
// of partitions' series cheap to hold between rounds.
type rendered struct {
	textGzip  []byte
	protoGzip []byte
	series    int
	families  []string
	// familySeries[i] is the series count of families[i].
	familySeries []int
}

// renderMetrics encodes one round's metrics family by family, so only one
// family's protobuf structures exist at a time.
func renderMetrics(metrics []prometheus.Metric) (rendered, error) {
	var order []*prometheus.Desc
	groups := map[*prometheus.Desc][]prometheus.Metric{}
	for _, m := range metrics {
		d := m.Desc()
		if _, ok := groups[d]; !ok {
			order = append(order, d)
		}
		groups[d] = append(groups[d], m)
	}
	enc := newEncoders()
	for _, d := range order {
		reg := prometheus.NewRegistry()
		if err := reg.Register(metricSlice(groups[d])); err != nil {
			return rendered{}, err
		}
		mfs, err := reg.Gather()
		if err != nil {
			return rendered{}, fmt.Errorf("gathering %s: %w", d, err)
		}
		if err := enc.encode(mfs); err != nil {
			return rendered{}, err
		}
		delete(groups, d)
	}
	return enc.close()
}

// renderGatherer encodes everything g gathers (the exporter's own metrics).
func renderGatherer(g prometheus.Gatherer) (rendered, error) {
	mfs, err := g.Gather()
	if err != nil {
		return rendered{}, err
	}
	enc := newEncoders()
	if err := enc.encode(mfs); err != nil {
		return rendered{}, err
	}
	return enc.close()
}

type encoders struct {
	text, proto       bytes.Buffer
	textZip, protoZip *gzip.Writer
	textEnc, protoEnc expfmt.Encoder
	out               rendered
}

func newEncoders() *encoders {
	e := &encoders{}
	e.textZip, _ = gzip.NewWriterLevel(&e.text, gzip.BestSpeed)
	e.protoZip, _ = gzip.NewWriterLevel(&e.proto, gzip.BestSpeed)
	// Every pgcapacity name is a legacy Prometheus name: escaping would only
	// copy each family (a tenth of a round's CPU at 4,096 partitions).
	e.textEnc = expfmt.NewEncoder(e.textZip, textFormat.WithEscapingScheme(model.NoEscaping))
	e.protoEnc = expfmt.NewEncoder(e.protoZip, protoFormat.WithEscapingScheme(model.NoEscaping))
	return e
}

func (e *encoders) encode(mfs []*dto.MetricFamily) error {
	for _, mf := range mfs {
		if err := e.textEnc.Encode(mf); err != nil {
			return fmt.Errorf("encoding %s: %w", mf.GetName(), err)
		}
		if err := e.protoEnc.Encode(mf); err != nil {
			return fmt.Errorf("encoding %s: %w", mf.GetName(), err)
		}
		e.out.series += len(mf.GetMetric())
		e.out.families = append(e.out.families, mf.GetName())
		e.out.familySeries = append(e.out.familySeries, len(mf.GetMetric()))
	}
	return nil
}

func (e *encoders) close() (rendered, error) {
	if err := e.textZip.Close(); err != nil {
		return rendered{}, err
	}
	if err := e.protoZip.Close(); err != nil {
		return rendered{}, err
	}
	e.out.textGzip, e.out.protoGzip = e.text.Bytes(), e.proto.Bytes()
	return e.out, nil
}

var descExporterSeries = newDesc("exporter_series",
	"Series this exporter publishes in the family, so a fleet can budget its series (this family included).",
	[]string{"family"})

// seriesPart renders pgcapacity_exporter_series for the families of parts
// and for itself.
func seriesPart(parts []rendered) (rendered, error) {
	var out metricList
	self := 1
	for _, p := range parts {
		for i, f := range p.families {
			out.add(descExporterSeries, float64(p.familySeries[i]), f)
			self++
		}
	}
	out.add(descExporterSeries, float64(self), namespace+"_exporter_series")
	return renderMetrics(out)
}

// Snapshot is one immutable rendering of every metric: text and protobuf
// exposition, each one gzip member. Rendering happens once per sampling
// round; a scrape only copies bytes, so any number of scrapers costs
// neither the database nor much CPU.
type Snapshot struct {
	At        time.Time
	Series    int
	textGzip  []byte
	protoGzip []byte
}

// assemble joins rendered parts into one snapshot. Each family belongs to
// exactly one part, so concatenating the parts' expositions is valid; they
// are recompressed as a single gzip member, which every client reads.
func assemble(parts []rendered) (*Snapshot, error) {
	s := &Snapshot{At: time.Now()}
	var err error
	if s.textGzip, err = joinGzip(parts, func(r rendered) []byte { return r.textGzip }); err != nil {
		return nil, err
	}
	if s.protoGzip, err = joinGzip(parts, func(r rendered) []byte { return r.protoGzip }); err != nil {
		return nil, err
	}
	for _, p := range parts {
		s.Series += p.series
	}
	return s, nil
}

func joinGzip(parts []rendered, pick func(rendered) []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	for _, p := range parts {
		zr, err := gzip.NewReader(bytes.NewReader(pick(p)))
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(zw, zr); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Text returns the text exposition, uncompressed.
func (s *Snapshot) Text() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(s.textGzip))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// ServeHTTP writes the snapshot in the format and encoding the scraper asks for.
func (s *Snapshot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	body, contentType := s.textGzip, textFormat
	if format.FormatType() == expfmt.TypeProtoDelim {
		body, contentType = s.protoGzip, protoFormat
	}
	h := w.Header()
	h.Set("Content-Type", string(contentType))
	h.Set("Vary", "Accept, Accept-Encoding")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
		return
	}
	// Scrapers ask for gzip; a person's curl may not. Inflate for them.
	if r.Method == http.MethodHead {
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = io.Copy(w, zr)
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
