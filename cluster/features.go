package cluster

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// The feature gate: a command that needs an addition to the command
// encoding (fsm.Features) is proposed only when every node that applies the
// log understands it, so that a rolling upgrade never makes an older node
// stop on an entry it cannot decode. Every member announces its build's
// features in its gossip meta; a build before the gate announces none.

// featuresRecheck is how long a computed gate is reused: a push asks for
// it, and reading the raft configuration goes through raft's main loop.
const featuresRecheck = time.Second

// featureGate caches the features every member understands.
type featureGate struct {
	mu      sync.Mutex
	at      time.Time
	common  fsm.Features
	lacking []string // members that lack one of this build's features
}

// clusterFeatures returns the features every server of the raft
// configuration and every live member understands, and the members that
// lack some of this build's.
func (n *Node) clusterFeatures() (fsm.Features, []string) {
	g := &n.features
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.at.IsZero() && time.Since(g.at) < featuresRecheck {
		return g.common, g.lacking
	}
	members := n.gossip.snapshot()
	names := map[string]bool{}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			names[string(s.ID)] = true
		}
	} else {
		return g.common, g.lacking // keep the last answer (the zero gate at first)
	}
	for name, m := range members {
		if m.state == memberlist.StateAlive || m.state == memberlist.StateSuspect {
			names[name] = true
		}
	}
	common := fsm.SupportedFeatures
	var lacking []string
	for name := range names {
		if name == n.name {
			continue
		}
		var has fsm.Features
		if m, ok := members[name]; ok && m.hasRaw {
			has = fsm.Features(m.meta.Features)
		}
		if fsm.SupportedFeatures&^has != 0 {
			lacking = append(lacking, name)
		}
		common &= has
	}
	sort.Strings(lacking)
	g.at, g.common, g.lacking = time.Now(), common, lacking
	return common, lacking
}

// gateFeatures makes the command fit what the cluster understands: who
// pushed is left out while a member cannot store it (a push must not fail
// for it), and a command that needs more than the cluster understands is
// refused as unavailable (nothing proposed; it works once every node is
// upgraded).
func (n *Node) gateFeatures(cmd *fsm.Command) error {
	need := cmd.Needs()
	if need == 0 {
		return nil
	}
	common, lacking := n.clusterFeatures()
	if need&^common == 0 {
		return nil
	}
	if !cmd.ExpireAfter.Set && cmd.Op != fsm.OpDeleteMatching {
		cmd.PushedBy = fsm.PushedBy{}
		return nil
	}
	return &UnavailableError{Reason: fmt.Sprintf("%s needs every node to run a build that supports it; upgrade %s first",
		need&^common, strings.Join(lacking, ", "))}
}
