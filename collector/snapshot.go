package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
// family's protobuf structures exist at a time. It consumes metrics: each
// is dropped from the slice once its family is encoded, so a round's
// largest families are freed as it goes, not when it ends.
func renderMetrics(zips *zipPool, metrics []prometheus.Metric) (rendered, error) {
	// Each metric's family by index, not a copy of the list per family: at
	// 16,384 partitions the round has 200,000 metrics.
	var order []*prometheus.Desc
	index := map[*prometheus.Desc]uint16{}
	family := make([]uint16, len(metrics))
	for i, m := range metrics {
		d := m.Desc()
		fi, ok := index[d]
		if !ok {
			fi = uint16(len(order))
			index[d] = fi
			order = append(order, d)
		}
		family[i] = fi
	}
	enc := newEncoders(zips)
	var members metricSlice
	for fi, d := range order {
		members = members[:0]
		for i, f := range family {
			if f == uint16(fi) {
				members = append(members, metrics[i])
				metrics[i] = nil
			}
		}
		reg := prometheus.NewRegistry()
		if err := reg.Register(members); err != nil {
			return rendered{}, err
		}
		mfs, err := reg.Gather()
		if err != nil {
			return rendered{}, fmt.Errorf("gathering %s: %w", d, err)
		}
		if err := enc.encode(mfs); err != nil {
			return rendered{}, err
		}
	}
	return enc.close()
}

// renderGatherer encodes everything g gathers (the exporter's own metrics).
func renderGatherer(zips *zipPool, g prometheus.Gatherer) (rendered, error) {
	mfs, err := g.Gather()
	if err != nil {
		return rendered{}, err
	}
	enc := newEncoders(zips)
	if err := enc.encode(mfs); err != nil {
		return rendered{}, err
	}
	return enc.close()
}

type encoders struct {
	zips              *zipPool
	text, proto       bytes.Buffer
	textZip, protoZip *gzip.Writer
	textEnc, protoEnc expfmt.Encoder
	out               rendered
}

func newEncoders(zips *zipPool) *encoders {
	e := &encoders{zips: zips}
	e.textZip, e.protoZip = zips.get(&e.text), zips.get(&e.proto)
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
	e.zips.put(e.textZip)
	e.zips.put(e.protoZip)
	e.out.textGzip, e.out.protoGzip = e.text.Bytes(), e.proto.Bytes()
	return e.out, nil
}

// zipPool keeps idle gzip writers for the next render: each holds about a
// megabyte of compression state, and a round renders eight of them (its
// metrics, the exporter's own, the series counts, the joined snapshot, in
// both formats). A nil pool makes new writers.
type zipPool struct {
	mu   sync.Mutex
	idle []*gzip.Writer
}

// maxIdleZips: renders run one pair of writers at a time, collectors
// rendering their rounds meanwhile another pair each.
const maxIdleZips = 4

func (p *zipPool) get(w io.Writer) *gzip.Writer {
	if p != nil {
		p.mu.Lock()
		n := len(p.idle)
		if n > 0 {
			zw := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			zw.Reset(w)
			return zw
		}
		p.mu.Unlock()
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	return zw
}

// put keeps a closed writer for reuse.
func (p *zipPool) put(zw *gzip.Writer) {
	if p == nil {
		return
	}
	zw.Reset(io.Discard) // not holding on to the rendered bytes
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < maxIdleZips {
		p.idle = append(p.idle, zw)
	}
}

var descExporterSeries = newDesc("exporter_series",
	"Series this exporter publishes in the family, so a fleet can budget its series (this family included).",
	[]string{"family"})

// seriesPart renders pgcapacity_exporter_series for the families of parts
// and for itself.
func seriesPart(zips *zipPool, parts []rendered) (rendered, error) {
	var out metricList
	self := 1
	for _, p := range parts {
		for i, f := range p.families {
			out.add(descExporterSeries, float64(p.familySeries[i]), f)
			self++
		}
	}
	out.add(descExporterSeries, float64(self), namespace+"_exporter_series")
	return renderMetrics(zips, out)
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
func assemble(zips *zipPool, parts []rendered) (*Snapshot, error) {
	s := &Snapshot{At: time.Now()}
	var err error
	if s.textGzip, err = joinGzip(zips, parts, func(r rendered) []byte { return r.textGzip }); err != nil {
		return nil, err
	}
	if s.protoGzip, err = joinGzip(zips, parts, func(r rendered) []byte { return r.protoGzip }); err != nil {
		return nil, err
	}
	for _, p := range parts {
		s.Series += p.series
	}
	return s, nil
}

func joinGzip(zips *zipPool, parts []rendered, pick func(rendered) []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zips.get(&buf)
	var zr gzip.Reader // one decompressor for every part
	for _, p := range parts {
		if err := zr.Reset(bytes.NewReader(pick(p))); err != nil {
			return nil, err
		}
		if _, err := io.Copy(zw, &zr); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	zips.put(zw)
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
