package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// Expiry: the leader proposes the removal of groups not pushed within
// --push.expire-after; Apply judges each listed group against the cutoff the
// command carries.

// expireBatch bounds the groups one expiry command lists, so a backlog of
// expired groups becomes several modest log entries instead of a huge one.
const expireBatch = 1000

// expiryInterval is how often the leader looks for expired groups: a tenth
// of the expiry age, at most 30 s and at least 50 ms.
// Groups with their own expiry (X-Pushgateway-Expire-After) are looked for
// at least every second, so one expires at most a second late.
func expiryInterval(expireAfter time.Duration) time.Duration {
	if expireAfter <= 0 {
		return time.Second
	}
	return min(max(expireAfter/10, 50*time.Millisecond), time.Second)
}

// runExpiry proposes the removal of groups not pushed for longer than
// ExpireAfter while this node is the leader. The leader's clock decides
// which groups to list and the cutoff travels in the command; Apply checks
// each listed group against that cutoff again, so every node removes the
// same groups at the same log position and a group pushed meanwhile stays.
func (n *Node) runExpiry() {
	defer n.wg.Done()
	ticker := time.NewTicker(expiryInterval(n.cfg.ExpireAfter))
	defer ticker.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-ticker.C:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		if err := n.expireOnce(n.now()); err != nil {
			n.logger.Warn("expiring groups", "err", err)
		}
	}
}

// expireOnce proposes the expiry of every group expired at now, by its own
// expiry or older than now minus ExpireAfter, in batches.
func (n *Node) expireOnce(now time.Time) error {
	var cutoff int64
	if n.cfg.ExpireAfter > 0 {
		cutoff = now.Add(-n.cfg.ExpireAfter).UnixNano()
	}
	for {
		cands := n.state.ExpiryCandidates(now.UnixNano(), cutoff, expireBatch)
		if len(cands) == 0 {
			return nil
		}
		cmd := &fsm.Command{Op: fsm.OpExpire, TimeUnixNano: now.UnixNano(), CutoffUnixNano: cutoff, Expire: cands}
		res, err := n.Submit(context.Background(), cmd)
		if err != nil {
			return err
		}
		n.logger.Info("expired groups (their own expiry or --push.expire-after)", "groups", len(cands),
			"expire_after", n.cfg.ExpireAfter, "cutoff", time.Unix(0, cutoff).UTC().Format(time.RFC3339Nano), "index", res.Index)
		if len(cands) < expireBatch || n.raft.State() != raft.Leader {
			return nil
		}
	}
}
