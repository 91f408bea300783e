// Command gojob is a Go batch job that pushes its outcome to the Pushgateway
// with client_golang's push package. Any node of a pushgateway-cluster will
// do:
//
//	go run ./examples/gojob -url http://pg2:9091
//
// The URL defaults to $PUSHGATEWAY_URL, else http://localhost:9091. The
// metrics go into the group {job="gojob", instance=<hostname>}.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

var (
	duration = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gojob_duration_seconds",
		Help: "Duration of the last run in seconds.",
	})
	lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gojob_last_success_timestamp_seconds",
		Help: "Unix time of the last successful run.",
	})
	records = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gojob_records_processed",
		Help: "Records processed by the last run.",
	})
)

// work is the job's real work; here a stand-in.
func work() (int, error) {
	time.Sleep(50 * time.Millisecond)
	return 100, nil
}

func main() {
	url := os.Getenv("PUSHGATEWAY_URL")
	if url == "" {
		url = "http://localhost:9091"
	}
	host, _ := os.Hostname()
	flag.StringVar(&url, "url", url, "Pushgateway URL (any node of the cluster)")
	instance := flag.String("instance", host, "value of the instance grouping label")
	flag.Parse()

	start := time.Now()
	n, err := work()
	duration.Set(time.Since(start).Seconds())

	pusher := push.New(url, "gojob").Grouping("instance", *instance).Collector(duration)
	pushFn := pusher.Add // failure: POST only the duration, keep the last success
	if err == nil {
		records.Set(float64(n))
		lastSuccess.SetToCurrentTime()
		pusher.Collector(lastSuccess).Collector(records)
		pushFn = pusher.Push // success: PUT replaces the whole group
	}

	// A 503 means nothing was stored (no quorum right now): retry later.
	// A 504 means the outcome is unknown: a push is idempotent, so retrying
	// is safe. Both come back as errors; retry a few times.
	pushErr := pushFn()
	for attempt := 1; pushErr != nil && attempt < 4; attempt++ {
		fmt.Fprintf(os.Stderr, "push attempt %d: %v\n", attempt, pushErr)
		time.Sleep(time.Duration(attempt) * time.Second)
		pushErr = pushFn()
	}
	if pushErr != nil {
		fmt.Fprintln(os.Stderr, "giving up:", pushErr)
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "job failed:", err)
		os.Exit(1)
	}
}
