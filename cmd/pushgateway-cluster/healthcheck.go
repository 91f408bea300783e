package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/config"
)

// healthcheck probes a gateway's readiness endpoint and exits 0 when it
// answers 200. It exists for container health checks: a FROM scratch image
// has no shell and no curl. When the API is protected by --web.config.file,
// --http.config.file names a client configuration in the Prometheus
// ecosystem's format (basic_auth, tls_config, as promtool's flag of the
// same name).
//
//	pushgateway-cluster healthcheck [--url=http://127.0.0.1:9091/-/ready] [--timeout=3s] [--http.config.file=FILE]
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9091/-/ready", "URL to probe")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	httpConfig := fs.String("http.config.file", "", "HTTP client configuration (basic_auth, tls_config, ...) for an API protected by --web.config.file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{}
	if *httpConfig != "" {
		cfg, _, err := config.LoadHTTPConfigFile(*httpConfig)
		if err != nil {
			fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
			return 2
		}
		if client, err = config.NewClientFromConfig(*cfg, "healthcheck"); err != nil {
			fmt.Fprintf(os.Stderr, "healthcheck: %s: %v\n", *httpConfig, err)
			return 2
		}
	}
	client.Timeout = *timeout
	resp, err := client.Get(*url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "healthcheck: %s answered %d: %s\n", *url, resp.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Printf("healthcheck: %s answered %d: %s\n", *url, resp.StatusCode, strings.TrimSpace(string(body)))
	return 0
}
