package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Snapshot is one immutable rendering of every metric, in the text and the
// protobuf exposition formats, each also gzipped. Rendering happens once per
// sampling round; a scrape only copies bytes, so any number of scrapers
// costs neither the database nor much CPU.
type Snapshot struct {
	At        time.Time
	Series    int
	text      []byte
	textGzip  []byte
	proto     []byte
	protoGzip []byte
}

var (
	textFormat  = expfmt.NewFormat(expfmt.TypeTextPlain)
	protoFormat = expfmt.NewFormat(expfmt.TypeProtoDelim)
)

func newSnapshot(mfs []*dto.MetricFamily) (*Snapshot, error) {
	s := &Snapshot{At: time.Now()}
	var err error
	if s.text, s.textGzip, err = encode(mfs, textFormat); err != nil {
		return nil, err
	}
	if s.proto, s.protoGzip, err = encode(mfs, protoFormat); err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		s.Series += len(mf.GetMetric())
	}
	return s, nil
}

func encode(mfs []*dto.MetricFamily, format expfmt.Format) (plain, zipped []byte, err error) {
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, nil, fmt.Errorf("encoding %s: %w", mf.GetName(), err)
		}
	}
	var zbuf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zbuf, gzip.BestSpeed)
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), zbuf.Bytes(), nil
}

// Text returns the text exposition.
func (s *Snapshot) Text() []byte { return s.text }

// ServeHTTP writes the snapshot in the format and encoding the scraper asks for.
func (s *Snapshot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.Negotiate(r.Header)
	body, zipped, contentType := s.text, s.textGzip, textFormat
	if format.FormatType() == expfmt.TypeProtoDelim {
		body, zipped, contentType = s.proto, s.protoGzip, protoFormat
	}
	h := w.Header()
	h.Set("Content-Type", string(contentType))
	h.Set("Vary", "Accept, Accept-Encoding")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		body = zipped
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
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
