// Package cluster replicates the state machine with hashicorp/raft.
//
// It owns everything between an accepted write and its application on
// every node: the raft log and stable store (raft-boltdb), the snapshot
// store, the transport, bootstrap, and the wait that makes a write visible
// on the node that accepted it before the client is answered. It feeds
// committed log entries to an fsm.FSM and reports the outcome back.
//
// The HTTP layer sees this package only through the small interfaces it
// declares (submit a command, report readiness); cmd wires the two.
// DESIGN.md, "Cluster (cluster/)" and "Reads", names the file of each job.
package cluster
