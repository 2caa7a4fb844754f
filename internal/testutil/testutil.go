// Package testutil holds the helpers that tests of several packages share;
// only tests import it.
package testutil

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// FreeAddress returns a loopback address nothing listens on right now, for
// a process the test starts (a server, Prometheus, Alertmanager).
func FreeAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// LockedBuffer collects the output of a subprocess or a logger that other
// goroutines write while the test reads it.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
