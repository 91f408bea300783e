// Package httpapi is the public HTTP surface of pushgateway-cluster: the
// same URLs, methods, status codes, messages and content types as the
// upstream Prometheus Pushgateway 1.11.
//
// On the write path it parses a request (grouping key from the URL, body
// in text or delimited protobuf format, gzip or snappy encoded), turns it
// into an fsm.Command stamped with the receive time and hands it to a
// Submitter, which replicates it; the answer is sent once the command was
// committed and applied on this node. On the read path it serves /metrics
// and /api/v1/metrics from the local state machine.
//
// The package depends on the cluster only through the Submitter and
// Readiness interfaces declared here.
package httpapi
