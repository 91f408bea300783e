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

// OutcomeUnknownError means a write was handed to raft but its commit was
// not confirmed in time; it may still be applied. Retrying is safe because
// every command is idempotent.
type OutcomeUnknownError struct{ Reason string }

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("outcome of the write unknown (%s): it may still be applied; retrying is safe", e.Reason)
}

// OutcomeUnknown marks the error for the HTTP layer (504).
func (e *OutcomeUnknownError) OutcomeUnknown() bool { return true }
