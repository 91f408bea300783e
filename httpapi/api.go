package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/internal/authz"
)

// Submitter replicates a command and returns the state machine's verdict
// once the command is applied on this node. It checks the command with
// fsm.Validate before proposing it (errors wrapping fsm.ErrInvalidCommand
// answer 400). Errors may implement Unavailable() bool (the write was
// certainly not applied, 503), OutcomeUnknown() bool (it may still be
// applied, 504) or InsufficientStorage() bool (507).
type Submitter interface {
	Submit(ctx context.Context, cmd *fsm.Command) (*fsm.Result, error)
}

// Readiness reports whether this node may serve (/-/ready).
type Readiness interface {
	Ready() error
}

// Cluster reports the cluster's state (/api/v1/cluster, the cluster page),
// removes members for good and moves leadership (admin API).
type Cluster interface {
	Status() ClusterStatus
	RemoveMember(ctx context.Context, name string) error
	// TransferLeadership hands leadership to the voter named to (empty:
	// any) and returns the new leader's name.
	TransferLeadership(ctx context.Context, to string) (string, error)
}

// Store is the read side of the local state machine.
type Store interface {
	Groups() []*fsm.Group
	// Exposed is the exposition of the pushed families (fsm.FSM.Exposed),
	// Families the same as messages, built anew (for the formats without
	// cached bytes).
	Exposed() []*fsm.ExposedFamily
	Families() []*dto.MetricFamily
	// Consistent reports whether the store would pass upstream's full
	// gather check.
	Consistent() bool
	// Snapshot captures the state at one applied index (admin API).
	Snapshot() *fsm.Snapshot
	// AppliedIndex is the log index of the last command applied to the
	// state (reads carry it in IndexHeader).
	AppliedIndex() uint64
	// Len and Series are the numbers of groups and of metrics in them.
	Len() int
	Series() int
}

// Options configures the API. Field names follow upstream's flags.
type Options struct {
	Store     Store
	Submitter Submitter
	Readiness Readiness
	// Reads, when set, makes every read of the pushed metrics current
	// first (see ReadBarrier); nil serves the local state as it is
	// (--cluster.stale-reads).
	Reads ReadBarrier
	// Cluster may be nil (then /api/v1/cluster is 404).
	Cluster Cluster
	// Registry holds the node's own metrics; it is exposed on /metrics
	// next to the pushed ones and instrumented by this package.
	Registry *prometheus.Registry
	Logger   *slog.Logger

	// RoutePrefix is the computed internal route prefix ("" for root).
	RoutePrefix string
	// ExternalPathPrefix is the path of --web.external-url, for links.
	ExternalPathPrefix string
	// MetricsPath is --web.telemetry-path.
	MetricsPath string
	// EnableLifecycle is --web.enable-lifecycle.
	EnableLifecycle bool
	// EnableAdminAPI is --web.enable-admin-api.
	EnableAdminAPI bool
	// ExpireAfter is --push.expire-after (0: never), shown for groups
	// without their own expiry in /api/v1/metrics and the UI.
	ExpireAfter time.Duration
	// DisableConsistencyCheck is --push.disable-consistency-check.
	DisableConsistencyCheck bool
	// BasicAuthUsers reports whether --web.config.file has
	// basic_auth_users at the time of a request: only then is a request's
	// basic-auth user name its authenticated user (requestUser). Nil: never.
	BasicAuthUsers func() bool
	// Authorization, when set, holds the rules of
	// --web.authorization-file: the jobs each user (requestUser) may push
	// to and delete from, and who may use the admin API (adminOnly).
	// Reads stay open. It needs BasicAuthUsers, or every request is
	// anonymous and may not write. Nil: no authorization, as upstream.
	Authorization *authz.Holder
	// EnableUTF8Names is --push.enable-utf8-names.
	EnableUTF8Names bool
	// MaxBodyBytes bounds a push body after decompression
	// (--push.max-body-bytes); 0 means DefaultMaxBodyBytes. Larger
	// bodies get 413 and change nothing.
	MaxBodyBytes int64
	// MaxSeriesPerPush bounds the series (metrics) in one push
	// (--push.max-series-per-push); 0 means DefaultMaxSeriesPerPush.
	MaxSeriesPerPush int
	// MaxLabelsPerSeries bounds the labels of one pushed series, grouping
	// labels included (--push.max-labels-per-series); 0 means
	// DefaultMaxLabelsPerSeries.
	MaxLabelsPerSeries int
	// MaxLabelValueBytes bounds one label value, grouping labels included
	// (--push.max-label-value-bytes); 0 means DefaultMaxLabelValueBytes.
	// Pushes over any of these limits get 400 and change nothing.
	MaxLabelValueBytes int
	// MaxGroups and MaxTotalSeries are the cluster-wide quotas
	// (--push.max-groups, --push.max-total-series), decided in the state
	// machine; here they are shown (self-metrics, cluster page). A push
	// over a quota gets 429.
	MaxGroups, MaxTotalSeries uint64

	// Flags and BuildInfo are shown by /api/v1/status and the status page.
	Flags     map[string]string
	BuildInfo map[string]string
	// Quit is closed by /-/quit when the lifecycle API is on.
	Quit chan struct{}
	// Now returns the receive time of a request; nil means time.Now.
	Now func() time.Time
}

// API serves the upstream-compatible HTTP interface.
type API struct {
	opts       Options
	logger     *slog.Logger
	metrics    *httpMetrics
	startTime  time.Time
	validation model.ValidationScheme
	escaping   model.EscapingScheme
	quitOnce   sync.Once
	// groupJSON caches /api/v1/metrics per group.
	groupJSON groupJSONCache
	// renderCache is the /metrics cache of the last Handler (for tests).
	renderCache *renderCache
	// denied counts 403s of --web.authorization-file by reason
	// (registered only when Options.Authorization is set).
	denied *prometheus.CounterVec
	// textParsers holds text parsers of this API's name validation, each
	// with its 4 KiB read buffer, for reuse: a new parser per text push
	// was a tenth of what a push allocated.
	textParsers sync.Pool
}

// New returns the API. It registers the HTTP self-metrics in opts.Registry.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MetricsPath == "" {
		opts.MetricsPath = "/metrics"
	}
	a := &API{
		opts:       opts,
		logger:     opts.Logger,
		metrics:    newHTTPMetrics(opts.Registry),
		startTime:  time.Now(),
		validation: model.LegacyValidation,
		escaping:   model.NoEscaping,
	}
	if opts.EnableUTF8Names {
		a.validation = model.UTF8Validation
		a.escaping = model.ValueEncodingEscaping
	}
	var deniedReg prometheus.Registerer
	if opts.Authorization != nil && opts.Registry != nil {
		deniedReg = opts.Registry
	}
	a.denied = newDeniedCounter(deniedReg)
	if opts.Registry != nil && opts.Store != nil {
		opts.Registry.MustRegister(newStoreCollector(opts.Store, opts.MaxGroups, opts.MaxTotalSeries))
	}
	return a
}

// Handler returns the root handler with every route, under the prefix.
func (a *API) Handler() http.Handler {
	prefix := a.opts.RoutePrefix
	r := route.New()
	r.Get(prefix+"/-/healthy", a.metrics.instrument("healthy", a.healthy))
	r.Get(prefix+"/-/ready", a.metrics.instrument("ready", a.ready))
	r.Get(path.Join(prefix, a.opts.MetricsPath), a.exposition().ServeHTTP)
	r.Get(prefix+SelfMetricsPath, a.selfMetrics().ServeHTTP)

	pushPath := prefix + "/metrics"
	for _, suffix := range []string{"", base64Suffix} {
		jobBase64 := suffix == base64Suffix
		put := a.push(fsm.OpPut, jobBase64)
		post := a.push(fsm.OpPost, jobBase64)
		del := a.delete(jobBase64)
		r.Put(pushPath+"/job"+suffix+"/:job/*labels", put)
		r.Post(pushPath+"/job"+suffix+"/:job/*labels", post)
		r.Del(pushPath+"/job"+suffix+"/:job/*labels", del)
		r.Put(pushPath+"/job"+suffix+"/:job", put)
		r.Post(pushPath+"/job"+suffix+"/:job", post)
		r.Del(pushPath+"/job"+suffix+"/:job", del)
	}
	// The web UI (ui.go): metrics at /, status, cluster, embedded assets.
	r.Get(prefix+"/static/*filepath", a.metrics.instrument("static", a.serveStatic))
	r.Get(prefix+"/status", a.metrics.instrument("status", a.statusPage))
	r.Get(prefix+"/cluster", a.metrics.instrument("cluster", a.clusterPage))
	r.Get(prefix+"/", a.metrics.instrument("status", a.metricsPage))
	r.Get(prefix+"/debug/pprof/*pprof", handlePprof)

	if a.opts.EnableLifecycle {
		r.Put(prefix+"/-/quit", a.quit)
		r.Post(prefix+"/-/quit", a.quit)
	} else {
		r.Put(prefix+"/-/quit", lifecycleDisabled)
		r.Post(prefix+"/-/quit", lifecycleDisabled)
	}
	r.Get("/-/quit", quitWrongMethod)

	mux := http.NewServeMux()
	mux.Handle("/", decodeRequest(r))

	apiPath := "/api"
	if prefix != "/" {
		apiPath = prefix + apiPath
	}
	av1 := route.New()
	a.registerAPIv1(av1)
	mux.Handle(apiPath+"/v1/", http.StripPrefix(apiPath+"/v1", av1))
	return mux
}
