// Command pushgateway-cluster is a highly available, drop-in replacement for
// the Prometheus Pushgateway: the upstream HTTP API on top of a raft-
// replicated state machine. With no peers it is a durable one-node cluster.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	webflag "github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"go.yaml.in/yaml/v2"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		os.Exit(admin(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pushgateway-cluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	app := kingpin.New(filepath.Base(os.Args[0]), "A highly available Pushgateway: the upstream API on a raft cluster.").UsageWriter(os.Stdout)
	var (
		webConfig       = webflag.AddFlags(app, ":9091")
		metricsPath     = app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
		externalURL     = app.Flag("web.external-url", "The URL under which the Pushgateway is externally reachable.").Default("").URL()
		routePrefix     = app.Flag("web.route-prefix", "Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url.").Default("").String()
		enableLifeCycle = app.Flag("web.enable-lifecycle", "Enable shutdown via HTTP request.").Default("false").Bool()
		enableAdminAPI  = app.Flag("web.enable-admin-api", "Enable API endpoints for admin control actions.").Default("false").Bool()
		persistenceFile = app.Flag("persistence.file", "Upstream Pushgateway persistence file to import once into an empty cluster (migration from upstream). The state itself lives in the raft log under --storage.path.").Default("").String()
		_               = app.Flag("persistence.interval", "Accepted for compatibility with upstream; every acknowledged write is already durable.").Default("5m").Duration()
		pushUnchecked   = app.Flag("push.disable-consistency-check", "Do not check consistency of pushed metrics. DANGEROUS.").Default("false").Bool()
		pushUTF8Names   = app.Flag("push.enable-utf8-names", "Allow UTF-8 characters in metric and label names.").Default("false").Bool()
		expireAfter     = app.Flag("push.expire-after", "Remove groups not pushed for this long (0: never). The leader decides, every node removes the same groups.").Default("0s").Duration()
		maxBodyBytes    = app.Flag("push.max-body-bytes", "Largest accepted push body, after decompression; larger pushes get 413 and change nothing.").Default(strconv.Itoa(httpapi.DefaultMaxBodyBytes)).Int64()
		maxSeries       = app.Flag("push.max-series-per-push", "Most series (metrics) one push may carry; more get 400 and change nothing.").Default(strconv.Itoa(httpapi.DefaultMaxSeriesPerPush)).Int()
		maxLabels       = app.Flag("push.max-labels-per-series", "Most labels one pushed series may have, grouping labels included; more get 400 and change nothing.").Default(strconv.Itoa(httpapi.DefaultMaxLabelsPerSeries)).Int()
		maxValueBytes   = app.Flag("push.max-label-value-bytes", "Longest label value (bytes) a push may carry, grouping labels included; longer gets 400 and changes nothing.").Default(strconv.Itoa(httpapi.DefaultMaxLabelValueBytes)).Int()
		readHeaderTO    = app.Flag("web.read-header-timeout", "How long a client may take to send the request headers before the connection is closed.").Default("10s").Duration()
		readTO          = app.Flag("web.read-timeout", "How long a client may take to send a whole request, body included; a push body still arriving then gets 408 and changes nothing.").Default("1m").Duration()
		idleTO          = app.Flag("web.idle-timeout", "How long an idle keep-alive connection stays open.").Default("2m").Duration()
		storagePath     = app.Flag("storage.path", "Directory for the raft log, snapshots and the node name.").Default("data/").String()
		nodeName        = app.Flag("cluster.node-name", "Name of this node (its raft server ID). Default: the hostname; persisted after the first start.").Default("").String()
		raftListen      = app.Flag("raft.listen-address", "Address raft and forwarded commands listen on.").Default("0.0.0.0:9095").String()
		raftAdvertise   = app.Flag("raft.advertise-address", "Address other nodes reach raft at. Default: derived from --raft.listen-address, never 0.0.0.0.").Default("").String()
		gossipListen    = app.Flag("cluster.listen-address", "Address memberlist gossip listens on (TCP and UDP).").Default("0.0.0.0:9094").String()
		gossipAdvertise = app.Flag("cluster.advertise-address", "Gossip address other nodes reach this node at. Default: derived, never 0.0.0.0.").Default("").String()
		peers           = app.Flag("cluster.peer", "Gossip address (host:port) of a member to join; repeatable. A DNS name with several addresses joins them all.").Strings()
		bootstrapExpect = app.Flag("cluster.bootstrap-expect", "Number of voters that must be present before the cluster bootstraps for the first time.").Default("1").Int()
		maxVoters       = app.Flag("cluster.max-voters", "Number of voters the leader keeps; further nodes join as non-voters.").Default("5").Int()
		reapTimeout     = app.Flag("cluster.reap-timeout", "How long a failed or departed voter stays in the raft configuration before the leader removes it (only while the rest keep a quorum).").Default("30m").Duration()
		writeTimeout    = app.Flag("cluster.write-timeout", "How long a write may wait for a leader and a commit before it fails with 503.").Default("10s").Duration()
		gossipKeyFile   = app.Flag("cluster.gossip-key-file", "File with base64 gossip encryption keys, one per line, each 16, 24 or 32 bytes. The first key encrypts, all of them decrypt (key rotation). Empty: gossip is not encrypted.").Default("").String()
		clusterTLSFile  = app.Flag("cluster.tls-config-file", "YAML file (tls_server_config, tls_client_config) that turns on mutual TLS for every connection on the raft port: raft and forwarded writes. Empty: plain TCP.").Default("").String()
		promslogConfig  = promslog.Config{Style: promslog.GoKitStyle}
	)
	promslogflag.AddFlags(app, &promslogConfig)
	app.Version(version.Print("pushgateway-cluster"))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		return err
	}
	logger := promslog.New(&promslogConfig)

	prefix := computeRoutePrefix(*routePrefix, *externalURL)
	externalPathPrefix := computeRoutePrefix("", *externalURL)
	logger.Info("starting pushgateway-cluster", "version", version.Info())
	logger.Info("build context", "build_context", version.BuildContext())
	if *expireAfter < 0 {
		return fmt.Errorf("--push.expire-after must not be negative, got %s", *expireAfter)
	}
	upstreamFile, err := loadUpstreamFile(*persistenceFile, logger)
	if err != nil {
		return err
	}

	flags := map[string]string{}
	boilerplate := kingpin.New("", "").Version("")
	for _, f := range app.Model().Flags {
		if boilerplate.GetFlag(f.Name) == nil {
			flags[f.Name] = f.Value.String()
		}
	}

	reg := newSelfRegistry()
	state, err := newState(reg)
	if err != nil {
		return err
	}

	apiURL := ""
	if *externalURL != nil && (*externalURL).Host != "" {
		apiURL = (*externalURL).String()
	}
	apiListen := ""
	if addrs := *webConfig.WebListenAddresses; len(addrs) > 0 {
		apiListen = addrs[0]
	}
	var gossipKeys [][]byte
	if *gossipKeyFile != "" {
		if gossipKeys, err = cluster.LoadGossipKeyFile(*gossipKeyFile); err != nil {
			return err
		}
		logger.Info("gossip encryption on", "keys", len(gossipKeys), "file", *gossipKeyFile)
	}
	var tlsServer, tlsClient *tls.Config
	if *clusterTLSFile != "" {
		if tlsServer, tlsClient, err = cluster.LoadTLSConfigFile(*clusterTLSFile); err != nil {
			return err
		}
		logger.Info("mutual TLS on the raft port", "file", *clusterTLSFile)
	}
	node, err := cluster.Start(cluster.Config{
		DataDir:         *storagePath,
		NodeName:        *nodeName,
		RaftListen:      *raftListen,
		RaftAdvertise:   *raftAdvertise,
		GossipListen:    *gossipListen,
		GossipAdvertise: *gossipAdvertise,
		Peers:           *peers,
		BootstrapExpect: *bootstrapExpect,
		MaxVoters:       *maxVoters,
		ReapTimeout:     *reapTimeout,
		WriteTimeout:    *writeTimeout,
		ExpireAfter:     *expireAfter,
		APIURL:          apiURL,
		APIListen:       apiListen,
		APITLS:          webServesTLS(*webConfig.WebConfigFile),
		State:           state,
		Logger:          logger.With("component", "cluster"),
		Registerer:      reg,
		GossipKeys:      gossipKeys,
		TLSServer:       tlsServer,
		TLSClient:       tlsClient,
	})
	if err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}

	if *expireAfter > 0 {
		logger.Info("expiry on: the leader removes groups not pushed within --push.expire-after", "expire_after", *expireAfter)
	}
	readiness := &gatedReadiness{node: node}
	importCtx, stopImport := context.WithCancel(context.Background())
	defer stopImport()
	if upstreamFile != nil {
		readiness.importing.Store(true)
		go importUpstream(importCtx, node, state, upstreamFile, logger, readiness)
	}

	quit := make(chan struct{})
	api := httpapi.New(httpapi.Options{
		Store:                   state,
		Submitter:               node,
		Readiness:               readiness,
		Cluster:                 node,
		Registry:                reg,
		Logger:                  logger,
		RoutePrefix:             prefix,
		ExternalPathPrefix:      externalPathPrefix,
		MetricsPath:             *metricsPath,
		EnableLifecycle:         *enableLifeCycle,
		EnableAdminAPI:          *enableAdminAPI,
		DisableConsistencyCheck: *pushUnchecked,
		EnableUTF8Names:         *pushUTF8Names,
		MaxBodyBytes:            *maxBodyBytes,
		MaxSeriesPerPush:        *maxSeries,
		MaxLabelsPerSeries:      *maxLabels,
		MaxLabelValueBytes:      *maxValueBytes,
		Flags:                   flags,
		BuildInfo: map[string]string{
			"version":   version.Version,
			"revision":  version.Revision,
			"branch":    version.Branch,
			"buildUser": version.BuildUser,
			"buildDate": version.BuildDate,
			"goVersion": version.GoVersion,
		},
		Quit: quit,
	})

	server := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: *readHeaderTO, ReadTimeout: *readTO, IdleTimeout: *idleTO}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		select {
		case <-sig:
			logger.Info("received SIGINT/SIGTERM; exiting gracefully...")
		case <-quit:
			logger.Warn("received termination request via web service, exiting gracefully...")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			logger.Error("HTTP server shutdown", "err", err)
		}
	}()

	err = web.ListenAndServe(server, webConfig, logger)
	if errors.Is(err, http.ErrServerClosed) {
		logger.Info("HTTP server stopped")
		err = nil
	} else {
		logger.Error("HTTP server stopped", "err", err)
	}
	stopImport()
	if serr := node.Shutdown(); serr != nil {
		logger.Error("problem shutting down the cluster node", "err", serr)
		if err == nil {
			err = serr
		}
	}
	return err
}

// newSelfRegistry returns a registry with the gateway's own collectors (the
// HTTP and cluster metrics are registered later by their packages).
func newSelfRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("pushgateway"),
	)
	return reg
}

// newState returns an empty state machine that knows the gateway's own
// families. It needs them before the node starts applying the log; the
// cluster metrics are registered by the node, so their families are added
// from a node-less list.
func newState(reg *prometheus.Registry) (*fsm.FSM, error) {
	reserved, err := httpapi.ReservedFamilies(reg)
	if err != nil {
		return nil, fmt.Errorf("gather self-metrics: %w", err)
	}
	for name, f := range cluster.SelfMetricFamilies() {
		reserved[name] = f
	}
	return fsm.New(reserved), nil
}

// computeRoutePrefix returns the route prefix from --web.route-prefix or,
// when that is empty, the path of --web.external-url: "" for the root,
// otherwise starting with "/" and without a trailing "/".
func computeRoutePrefix(prefix string, externalURL *url.URL) string {
	if prefix == "" && externalURL != nil {
		prefix = externalURL.Path
	}
	if prefix == "/" || prefix == "" {
		return ""
	}
	if !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	return strings.TrimSuffix(prefix, "/")
}

// webServesTLS reports whether the --web.config.file turns on TLS, so that
// other members show this node's API URL with https. Errors are left to
// exporter-toolkit, which reports them when it starts the server.
func webServesTLS(path string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var c struct {
		TLS web.TLSConfig `yaml:"tls_server_config"`
	}
	if yaml.Unmarshal(b, &c) != nil {
		return false
	}
	return c.TLS.IsEnabled()
}
