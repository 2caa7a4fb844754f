// Command healthcheck is the container image's HEALTHCHECK. The image has no
// shell and no curl, so this small static binary asks the pgcapacity exporter
// in the same container for /healthz and exits 0 when it answers 200, 1
// otherwise.
//
// It asks the exporter's plain health listener, PGCAPACITY_HEALTH_LISTEN_ADDRESS
// (the image sets :9843), which stays outside the TLS and basic auth that
// PGCAPACITY_WEB_CONFIG_FILE may turn on; when that is empty, the main
// listener, PGCAPACITY_LISTEN_ADDRESS (default :9842), over plain HTTP. Either
// is asked on loopback when it listens on every address.
// PGCAPACITY_HEALTHCHECK_URL overrides the whole URL.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// timeout stays under the HEALTHCHECK --timeout of the Dockerfile.
const timeout = 4 * time.Second

func main() {
	os.Exit(run(context.Background(), os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) int {
	target, err := healthURL(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: building the request for %s: %v\n", target, err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: asking %s: %v\n", target, err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusBadRequest) && getenv("PGCAPACITY_HEALTH_LISTEN_ADDRESS") == "" && getenv("PGCAPACITY_HEALTHCHECK_URL") == "" {
			// The web configuration's basic auth or TLS covers the main listener.
			hint = " (set PGCAPACITY_HEALTH_LISTEN_ADDRESS, such as :9843, for a health listener without TLS and basic auth)"
		}
		fmt.Fprintf(stderr, "healthcheck: %s answered %s%s\n", target, resp.Status, hint)
		return 1
	}
	fmt.Fprintf(stdout, "healthcheck: %s ok\n", target)
	return 0
}

// healthURL is PGCAPACITY_HEALTHCHECK_URL, else /healthz on the port of
// PGCAPACITY_HEALTH_LISTEN_ADDRESS or, when that is empty, of
// PGCAPACITY_LISTEN_ADDRESS, asked on loopback when the exporter listens on
// every address.
func healthURL(getenv func(string) string) (string, error) {
	if u := getenv("PGCAPACITY_HEALTHCHECK_URL"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return "", fmt.Errorf("PGCAPACITY_HEALTHCHECK_URL=%q is not an http(s) URL: use one such as http://127.0.0.1:9843/healthz", u)
		}
		return u, nil
	}
	variable := "PGCAPACITY_HEALTH_LISTEN_ADDRESS"
	addr := getenv(variable)
	if addr == "" {
		variable = "PGCAPACITY_LISTEN_ADDRESS"
		if addr = getenv(variable); addr == "" {
			addr = ":9842"
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("%s=%q is not host:port: use one such as :9843, or set PGCAPACITY_HEALTHCHECK_URL", variable, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/healthz"}).String(), nil
}
