package main

import (
	"net/url"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/exporter-toolkit/web"
	webflag "github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

// webFlags configure the HTTP server and the API routes (--web.*).
type webFlags struct {
	toolkit           *web.FlagConfig
	metricsPath       *string
	externalURL       **url.URL
	routePrefix       *string
	enableLifecycle   *bool
	enableAdminAPI    *bool
	readHeaderTimeout *time.Duration
	readTimeout       *time.Duration
	idleTimeout       *time.Duration
	// authorizationFile is --web.authorization-file: per-job write rules
	// for the basic-auth users (internal/authz), reloaded on SIGHUP.
	authorizationFile *string
}

// pushFlags configure what a push may carry (--push.*, --persistence.*).
type pushFlags struct {
	persistenceFile    *string
	unchecked          *bool
	utf8Names          *bool
	expireAfter        *time.Duration
	maxBodyBytes       *int64
	maxSeriesPerPush   *int
	maxLabelsPerSeries *int
	maxLabelValueBytes *int
	maxGroups          *uint64
	maxTotalSeries     *uint64
}

// clusterFlags configure storage, raft and memberlist (--storage.path,
// --cluster.*, --raft.*).
type clusterFlags struct {
	storagePath     *string
	nodeName        *string
	raftListen      *string
	raftAdvertise   *string
	gossipListen    *string
	gossipAdvertise *string
	peers           *[]string
	bootstrapExpect *int
	maxVoters       *int
	reapTimeout     *time.Duration
	writeTimeout    *time.Duration
	readTimeout     *time.Duration
	staleReads      *bool
	gossipKeyFile   *string
	tlsConfigFile   *string
	minFreeBytes    *units.Base2Bytes
	// clockShift moves this node's clock (hidden; tests play a node with
	// a skewed clock with it).
	clockShift *time.Duration
}

// Default cluster-wide quotas, sized so that the state fits a node with
// 4 GiB of memory (README, "Quotas"): about 1.6 KiB per stored series
// (measured at 1.2 M series) makes 1.5 M series about 2.4 GiB, leaving room
// for a scrape's buffers, snapshots and a restart's replay.
const (
	DefaultMaxGroups      = 200_000
	DefaultMaxTotalSeries = 1_500_000
)

// flagSet is every command-line flag of the gateway, grouped by what it
// configures.
type flagSet struct {
	web     webFlags
	push    pushFlags
	cluster clusterFlags
	log     promslog.Config
}

// addFlags defines the flags on app: upstream's names and defaults, then
// ours (see the README, "Flags beyond upstream").
func addFlags(app *kingpin.Application) *flagSet {
	f := &flagSet{log: promslog.Config{Style: promslog.GoKitStyle}}
	f.web = webFlags{
		toolkit:           webflag.AddFlags(app, ":9091"),
		metricsPath:       app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String(),
		externalURL:       app.Flag("web.external-url", "The URL under which the Pushgateway is externally reachable.").Default("").URL(),
		routePrefix:       app.Flag("web.route-prefix", "Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url.").Default("").String(),
		enableLifecycle:   app.Flag("web.enable-lifecycle", "Enable shutdown via HTTP request.").Default("false").Bool(),
		enableAdminAPI:    app.Flag("web.enable-admin-api", "Enable API endpoints for admin control actions.").Default("false").Bool(),
		readHeaderTimeout: app.Flag("web.read-header-timeout", "How long a client may take to send the request headers before the connection is closed.").Default("10s").Duration(),
		readTimeout:       app.Flag("web.read-timeout", "How long a client may take to send a whole request, body included; a push body still arriving then gets 408 and changes nothing.").Default("1m").Duration(),
		idleTimeout:       app.Flag("web.idle-timeout", "How long an idle keep-alive connection stays open.").Default("2m").Duration(),
		authorizationFile: app.Flag("web.authorization-file", "YAML file of per-user write rules for the basic_auth_users of --web.config.file: job name globs each user may push to and delete from, and who may use the admin API (others get 403; reads stay open). Reloaded on SIGHUP. Empty: every authenticated user may write, as upstream.").Default("").String(),
	}
	persistenceFile := app.Flag("persistence.file", "Upstream Pushgateway persistence file to import once into an empty cluster (migration from upstream). The state itself lives in the raft log under --storage.path.").Default("").String()
	app.Flag("persistence.interval", "Accepted for compatibility with upstream; every acknowledged write is already durable.").Default("5m").Duration()
	f.push = pushFlags{
		persistenceFile: persistenceFile,
		unchecked:       app.Flag("push.disable-consistency-check", "Do not check consistency of pushed metrics. DANGEROUS.").Default("false").Bool(),
		utf8Names:       app.Flag("push.enable-utf8-names", "Allow UTF-8 characters in metric and label names.").Default("false").Bool(),
		expireAfter:     app.Flag("push.expire-after", "Remove groups not pushed for this long (0: never). The leader decides, every node removes the same groups.").Default("0s").Duration(),
		maxBodyBytes:    app.Flag("push.max-body-bytes", "Largest accepted push body, after decompression; larger pushes get 413 and change nothing.").Default(strconv.Itoa(httpapi.DefaultMaxBodyBytes)).Int64(),
		maxSeriesPerPush: app.Flag("push.max-series-per-push", "Most series (metrics) one push may carry; more get 400 and change nothing.").
			Default(strconv.Itoa(httpapi.DefaultMaxSeriesPerPush)).Int(),
		maxLabelsPerSeries: app.Flag("push.max-labels-per-series", "Most labels one pushed series may have, grouping labels included; more get 400 and change nothing.").
			Default(strconv.Itoa(httpapi.DefaultMaxLabelsPerSeries)).Int(),
		maxLabelValueBytes: app.Flag("push.max-label-value-bytes", "Longest label value (bytes) a push may carry, grouping labels included; longer gets 400 and changes nothing.").
			Default(strconv.Itoa(httpapi.DefaultMaxLabelValueBytes)).Int(),
		maxGroups: app.Flag("push.max-groups", "Cluster-wide quota: most groups the store may hold; a push that would create another gets 429 and changes nothing. 0: no quota. The leader's value applies.").
			Default(strconv.Itoa(DefaultMaxGroups)).Uint64(),
		maxTotalSeries: app.Flag("push.max-total-series", "Cluster-wide quota: most series (metrics) all groups together may hold; a push that would go beyond gets 429 and changes nothing. 0: no quota. The leader's value applies.").
			Default(strconv.Itoa(DefaultMaxTotalSeries)).Uint64(),
	}
	f.cluster = clusterFlags{
		storagePath:     app.Flag("storage.path", "Directory for the raft log, snapshots and the node name.").Default("data/").String(),
		nodeName:        app.Flag("cluster.node-name", "Name of this node (its raft server ID). Default: the hostname; persisted after the first start.").Default("").String(),
		raftListen:      app.Flag("raft.listen-address", "Address raft and forwarded commands listen on.").Default("0.0.0.0:9095").String(),
		raftAdvertise:   app.Flag("raft.advertise-address", "Address other nodes reach raft at. Default: derived from --raft.listen-address, never 0.0.0.0.").Default("").String(),
		gossipListen:    app.Flag("cluster.listen-address", "Address memberlist gossip listens on (TCP and UDP).").Default("0.0.0.0:9094").String(),
		gossipAdvertise: app.Flag("cluster.advertise-address", "Gossip address other nodes reach this node at. Default: derived, never 0.0.0.0.").Default("").String(),
		peers:           app.Flag("cluster.peer", "Gossip address (host:port) of a member to join; repeatable. A DNS name with several addresses joins them all.").Strings(),
		bootstrapExpect: app.Flag("cluster.bootstrap-expect", "Number of voters that must be present before the cluster bootstraps for the first time.").Default("1").Int(),
		maxVoters:       app.Flag("cluster.max-voters", "Number of voters the leader keeps; further nodes join as non-voters.").Default("5").Int(),
		reapTimeout:     app.Flag("cluster.reap-timeout", "How long a failed or departed voter stays in the raft configuration before the leader removes it (only while the rest keep a quorum).").Default("30m").Duration(),
		writeTimeout:    app.Flag("cluster.write-timeout", "How long a write may wait for a leader and a commit before it fails with 503.").Default("10s").Duration(),
		readTimeout:     app.Flag("cluster.read-timeout", "How long a read of the pushed metrics (/metrics, /api/v1/metrics, the metrics page) may wait to learn the leader's commit index and apply up to it; then it fails with 503. Keep it below the scrape timeout.").Default(cluster.DefaultReadTimeout.String()).Duration(),
		staleReads:      app.Flag("cluster.stale-reads", "Serve reads from this node's state as it is, without asking the leader first: lower latency and no 503 while cut off, but a node behind the others serves older values.").Default("false").Bool(),
		gossipKeyFile:   app.Flag("cluster.gossip-key-file", "File with base64 gossip encryption keys, one per line, each 16, 24 or 32 bytes. The first key encrypts, all of them decrypt (key rotation). Empty: gossip is not encrypted.").Default("").String(),
		tlsConfigFile:   app.Flag("cluster.tls-config-file", "YAML file (tls_server_config, tls_client_config) that turns on mutual TLS for every connection on the raft port: raft and forwarded writes. Empty: plain TCP.").Default("").String(),
		minFreeBytes: app.Flag("storage.min-free-bytes", "Free space of the --storage.path filesystem below which pushes are refused with 507 (reads go on; writes resume once there is room), so that raft's term, vote and snapshots still fit. 0: no reserve.").
			Default(strconv.Itoa(cluster.DefaultMinFreeBytes>>20) + "MiB").Bytes(),
		clockShift: app.Flag("debug.clock-shift", "Move this node's clock by this much (tests of clock skew only).").Hidden().Default("0s").Duration(),
	}
	promslogflag.AddFlags(app, &f.log)
	return f
}
