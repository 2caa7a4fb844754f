package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestHealthURL(t *testing.T) {
	cases := []struct {
		name    string
		vars    map[string]string
		want    string
		wantErr string
	}{
		{"default port", nil, "http://127.0.0.1:9842/healthz", ""},
		{"any address", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": ":9900"}, "http://127.0.0.1:9900/healthz", ""},
		{"unspecified v4", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": "0.0.0.0:9842"}, "http://127.0.0.1:9842/healthz", ""},
		{"unspecified v6", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": "[::]:9842"}, "http://127.0.0.1:9842/healthz", ""},
		{"one address", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": "10.1.2.3:9842"}, "http://10.1.2.3:9842/healthz", ""},
		{"ipv6 address", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": "[::1]:9842"}, "http://[::1]:9842/healthz", ""},
		{"explicit URL", map[string]string{"PGCAPACITY_HEALTHCHECK_URL": "https://localhost:9842/healthz", "PGCAPACITY_LISTEN_ADDRESS": "bad", "PGCAPACITY_HEALTH_LISTEN_ADDRESS": ":9843"}, "https://localhost:9842/healthz", ""},
		{"health listener", map[string]string{"PGCAPACITY_HEALTH_LISTEN_ADDRESS": ":9843", "PGCAPACITY_LISTEN_ADDRESS": ":9842"}, "http://127.0.0.1:9843/healthz", ""},
		{"health listener on one address", map[string]string{"PGCAPACITY_HEALTH_LISTEN_ADDRESS": "[::1]:9900", "PGCAPACITY_LISTEN_ADDRESS": "bad"}, "http://[::1]:9900/healthz", ""},
		{"no port", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": "9842"}, "", "PGCAPACITY_LISTEN_ADDRESS=\"9842\" is not host:port"},
		{"health listener without port", map[string]string{"PGCAPACITY_HEALTH_LISTEN_ADDRESS": "9843", "PGCAPACITY_LISTEN_ADDRESS": ":9842"}, "", "PGCAPACITY_HEALTH_LISTEN_ADDRESS=\"9843\" is not host:port"},
		{"bad URL", map[string]string{"PGCAPACITY_HEALTHCHECK_URL": "localhost:9842"}, "", "is not an http(s) URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := healthURL(env(tc.vars))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error containing %q, got %q, %v", tc.wantErr, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok\n"))
	}))
	defer healthy.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	// A main listener behind basic auth.
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "Basic")
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}))
	defer locked.Close()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	cases := []struct {
		name       string
		vars       map[string]string
		want       int
		wantStderr string
	}{
		{"healthy via listen address", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": healthy.Listener.Addr().String()}, 0, ""},
		{"healthy via URL", map[string]string{"PGCAPACITY_HEALTHCHECK_URL": healthy.URL + "/healthz"}, 0, ""},
		{"wrong path", map[string]string{"PGCAPACITY_HEALTHCHECK_URL": healthy.URL + "/nothing"}, 1, "404"},
		{"unhealthy", map[string]string{"PGCAPACITY_HEALTHCHECK_URL": failing.URL + "/healthz"}, 1, "503"},
		{"healthy via health listener", map[string]string{"PGCAPACITY_HEALTH_LISTEN_ADDRESS": healthy.Listener.Addr().String(), "PGCAPACITY_LISTEN_ADDRESS": locked.Listener.Addr().String()}, 0, ""},
		{"main listener behind basic auth", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": locked.Listener.Addr().String()}, 1, "401 Unauthorized (set PGCAPACITY_HEALTH_LISTEN_ADDRESS"},
		{"nothing listening", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": closed}, 1, "connection refused"},
		{"bad address", map[string]string{"PGCAPACITY_LISTEN_ADDRESS": "nonsense"}, 1, "not host:port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(context.Background(), env(tc.vars), &stdout, &stderr); got != tc.want {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", got, tc.want, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}
