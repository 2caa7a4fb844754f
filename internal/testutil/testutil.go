// Package testutil holds the helpers that tests of several packages share;
// only tests import it.
package testutil

import (
	"net"
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
