// Package fsm is the replicated state machine of pushgateway-cluster.
//
// It sits at the bottom of the write path: the HTTP layer parses a push into
// a Command, the cluster layer puts the encoded Command into the raft log,
// and every node feeds the committed log, entry by entry, into its own
// FSM.Apply. Apply is deterministic: it reads no clock, no randomness, no
// environment and no network, so the same log yields the same groups, the
// same consistency verdicts and byte-identical exposition on every node.
//
// The state is a set of metric groups keyed by grouping key, as in the
// upstream Pushgateway. Groups are immutable values: every change builds a
// new Group and swaps it in, so a snapshot is a cheap copy of the group
// table that can be streamed while Apply goes on.
//
// The consistency check that upstream performs by gathering the whole store
// on every push is done incrementally here: indexes by family name (type,
// owning groups) and by series hash make its cost proportional to the pushed
// group, not to the store.
//
// The package knows nothing of raft, HTTP or the network. DESIGN.md, "A push,
// from the handler to Apply on every node" and "Invariants of the state
// machine", says where each step and rule lives.
package fsm
