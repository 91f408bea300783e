// Command pushgateway-cluster is a highly available, drop-in replacement for
// the Prometheus Pushgateway: the upstream HTTP API on top of a raft-
// replicated state machine. With no peers it is a durable one-node cluster.
// It wires the packages together (DESIGN.md, "Packages"): flags to a
// cluster.Node and an httpapi handler, joined by internal/clusterapi.
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
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/clusterapi"
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
	fl := addFlags(app)
	app.Version(version.Print("pushgateway-cluster"))
	app.HelpFlag.Short('h')
	if _, err := app.Parse(args); err != nil {
		return err
	}
	logger := promslog.New(&fl.log)

	prefix := computeRoutePrefix(*fl.web.routePrefix, *fl.web.externalURL)
	externalPathPrefix := computeRoutePrefix("", *fl.web.externalURL)
	logger.Info("starting pushgateway-cluster", "version", version.Info())
	logger.Info("build context", "build_context", version.BuildContext())
	if *fl.push.expireAfter < 0 {
		return fmt.Errorf("--push.expire-after must not be negative, got %s", *fl.push.expireAfter)
	}
	upstreamFile, err := loadUpstreamFile(*fl.push.persistenceFile, logger)
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
	if *fl.web.externalURL != nil && (*fl.web.externalURL).Host != "" {
		apiURL = (*fl.web.externalURL).String()
	}
	apiListen := ""
	if addrs := *fl.web.toolkit.WebListenAddresses; len(addrs) > 0 {
		apiListen = addrs[0]
	}
	var gossipKeys [][]byte
	if *fl.cluster.gossipKeyFile != "" {
		if gossipKeys, err = cluster.LoadGossipKeyFile(*fl.cluster.gossipKeyFile); err != nil {
			return err
		}
		logger.Info("gossip encryption on", "keys", len(gossipKeys), "file", *fl.cluster.gossipKeyFile)
	}
	var tlsServer, tlsClient *tls.Config
	if *fl.cluster.tlsConfigFile != "" {
		if tlsServer, tlsClient, err = cluster.LoadTLSConfigFile(*fl.cluster.tlsConfigFile); err != nil {
			return err
		}
		logger.Info("mutual TLS on the raft port", "file", *fl.cluster.tlsConfigFile)
	}
	now := time.Now
	if shift := *fl.cluster.clockShift; shift != 0 {
		now = func() time.Time { return time.Now().Add(shift) }
		logger.Warn("this node's clock is shifted (--debug.clock-shift); for tests only", "shift", shift)
	}
	webConfig := readWebConfig(*fl.web.toolkit.WebConfigFile)
	authorization, err := loadAuthorization(*fl.web.authorizationFile, webConfig, logger)
	if err != nil {
		return err
	}
	node, err := cluster.Start(cluster.Config{
		Now:             now,
		MaxGroups:       *fl.push.maxGroups,
		MaxTotalSeries:  *fl.push.maxTotalSeries,
		MinFreeBytes:    uint64(*fl.cluster.minFreeBytes),
		DataDir:         *fl.cluster.storagePath,
		NodeName:        *fl.cluster.nodeName,
		RaftListen:      *fl.cluster.raftListen,
		RaftAdvertise:   *fl.cluster.raftAdvertise,
		GossipListen:    *fl.cluster.gossipListen,
		GossipAdvertise: *fl.cluster.gossipAdvertise,
		Peers:           *fl.cluster.peers,
		BootstrapExpect: *fl.cluster.bootstrapExpect,
		MaxVoters:       *fl.cluster.maxVoters,
		ReapTimeout:     *fl.cluster.reapTimeout,
		WriteTimeout:    *fl.cluster.writeTimeout,
		ReadTimeout:     *fl.cluster.readTimeout,
		LocalApplyWait:  *fl.cluster.staleReads,
		ExpireAfter:     *fl.push.expireAfter,
		APIURL:          apiURL,
		APIListen:       apiListen,
		APITLS:          webConfig.TLS,
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

	if *fl.push.expireAfter > 0 {
		logger.Info("expiry on: the leader removes groups not pushed within --push.expire-after", "expire_after", *fl.push.expireAfter)
	}
	readiness := &gatedReadiness{node: node}
	importCtx, stopImport := context.WithCancel(context.Background())
	defer stopImport()
	if upstreamFile != nil {
		readiness.importing.Store(true)
		go importUpstream(importCtx, node, state, upstreamFile, logger, readiness)
	}

	var reads httpapi.ReadBarrier = node
	if *fl.cluster.staleReads {
		reads = nil
		logger.Info("stale reads on: each node serves its own state without asking the leader (--cluster.stale-reads)")
	}
	quit := make(chan struct{})
	api := httpapi.New(httpapi.Options{
		Reads:                   reads,
		Store:                   state,
		Submitter:               node,
		Readiness:               readiness,
		Cluster:                 clusterapi.Adapt(node),
		Registry:                reg,
		Logger:                  logger,
		RoutePrefix:             prefix,
		ExternalPathPrefix:      externalPathPrefix,
		MetricsPath:             *fl.web.metricsPath,
		EnableLifecycle:         *fl.web.enableLifecycle,
		EnableAdminAPI:          *fl.web.enableAdminAPI,
		DisableConsistencyCheck: *fl.push.unchecked,
		EnableUTF8Names:         *fl.push.utf8Names,
		BasicAuthUsers:          newWebUsersWatch(*fl.web.toolkit.WebConfigFile, webConfig).BasicAuthUsers,
		ExpireAfter:             *fl.push.expireAfter,
		Authorization:           authorization,
		MaxBodyBytes:            *fl.push.maxBodyBytes,
		MaxSeriesPerPush:        *fl.push.maxSeriesPerPush,
		MaxLabelsPerSeries:      *fl.push.maxLabelsPerSeries,
		MaxLabelValueBytes:      *fl.push.maxLabelValueBytes,
		MaxGroups:               *fl.push.maxGroups,
		MaxTotalSeries:          *fl.push.maxTotalSeries,
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
		Now:  now,
	})

	if authorization != nil {
		stopReload := make(chan struct{})
		defer close(stopReload)
		reloadAuthorizationOnSIGHUP(authorization, webConfig, logger, stopReload)
	}
	server := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: *fl.web.readHeaderTimeout, ReadTimeout: *fl.web.readTimeout, IdleTimeout: *fl.web.idleTimeout}
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

	err = web.ListenAndServe(server, fl.web.toolkit, logger)
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

// webConfigSummary is what other parts of the program need to know of
// --web.config.file, which exporter-toolkit reads on its own.
type webConfigSummary struct {
	// TLS: the API serves https, so other members show this node's API
	// URL with https.
	TLS bool
	// BasicAuthUsers: basic_auth_users is set, so a request's basic-auth
	// user name is authenticated.
	BasicAuthUsers bool
	// Users are the names in basic_auth_users.
	Users map[string]bool
}

// readWebConfig summarises --web.config.file. Errors are left to
// exporter-toolkit, which reports them when it starts the server.
func readWebConfig(path string) webConfigSummary {
	if path == "" {
		return webConfigSummary{}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return webConfigSummary{}
	}
	var c struct {
		TLS   web.TLSConfig     `yaml:"tls_server_config"`
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if yaml.Unmarshal(b, &c) != nil {
		return webConfigSummary{}
	}
	users := make(map[string]bool, len(c.Users))
	for u := range c.Users {
		users[u] = true
	}
	return webConfigSummary{TLS: c.TLS.IsEnabled(), BasicAuthUsers: len(c.Users) > 0, Users: users}
}
