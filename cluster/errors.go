package cluster

import "fmt"

// UnavailableError means a write was certainly not applied: no leader was
// known in time, or raft refused to take it. The client may retry.
type UnavailableError struct{ Reason string }

func (e *UnavailableError) Error() string {
	return "cluster unavailable, write not applied: " + e.Reason
}

// Unavailable marks the error for the HTTP layer (503).
func (e *UnavailableError) Unavailable() bool { return true }

// ReadUnavailableError means this node cannot serve a current read: it
// could not learn a read index from the leader, or not apply up to it, in
// time (readindex.go). Another node may be able to.
type ReadUnavailableError struct{ Reason string }

func (e *ReadUnavailableError) Error() string {
	return "this node cannot serve a current read: " + e.Reason
}

// Unavailable marks the error for the HTTP layer (503).
func (e *ReadUnavailableError) Unavailable() bool { return true }

// OutcomeUnknownError means a write was handed to raft but its commit was
// not confirmed in time; it may still be applied. Retrying is safe because
// every command is idempotent.
type OutcomeUnknownError struct{ Reason string }

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("outcome of the write unknown (%s): it may still be applied; retrying is safe", e.Reason)
}

// OutcomeUnknown marks the error for the HTTP layer (504).
func (e *OutcomeUnknownError) OutcomeUnknown() bool { return true }
