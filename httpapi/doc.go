// Package httpapi is the public HTTP surface of pushgateway-cluster: the
// same URLs, methods, status codes, messages and content types as the
// upstream Prometheus Pushgateway 1.11.
//
// On the write path it parses a request (grouping key from the URL, body
// in text or delimited protobuf format, gzip or snappy encoded, the series
// limit counted while it is read), turns it into an fsm.Command, checks it
// with fsm.Validate and hands it to a Submitter, which replicates it (the
// leader stamps it with its clock); the answer is sent once the command
// was committed and applied on this node. On the read path it serves
// /metrics and /api/v1/metrics from the local state machine, encoded
// completely before it is sent.
//
// The package imports nothing of the cluster: it declares the Submitter,
// Readiness and Cluster interfaces (and ClusterStatus) it needs, and
// internal/clusterapi adapts the cluster to them. See DESIGN.md.
package httpapi
