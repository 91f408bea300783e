package httpapi

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// pushRejectedPrefix starts the message of a push the state machine
// rejected, as upstream.
const pushRejectedPrefix = "pushed metrics are invalid or inconsistent with existing metrics: "

// groupingLabels extracts and validates the grouping key of a push or
// delete URL. On error it has answered the request already.
func (a *API) groupingLabels(w http.ResponseWriter, r *http.Request, jobBase64 bool) (map[string]string, bool) {
	job := route.Param(r.Context(), "job")
	if jobBase64 {
		var err error
		if job, err = decodeBase64(job); err != nil {
			http.Error(w, fmt.Sprintf("invalid base64 encoding in job name %q: %v", job, err), http.StatusBadRequest)
			a.logger.Debug("invalid base64 encoding in job name", "job", job, "err", err)
			return nil, false
		}
	}
	labelsString := route.Param(r.Context(), "labels")
	labels, err := parseGroupingLabels(labelsString, a.validation, a.escaping)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		a.logger.Debug("failed to parse URL", "url", labelsString, "err", err)
		return nil, false
	}
	if job == "" {
		http.Error(w, "job name is required", http.StatusBadRequest)
		a.logger.Debug("job name is required")
		return nil, false
	}
	if !utf8.ValidString(job) {
		http.Error(w, fmt.Sprintf("job name is not valid UTF-8: %q", job), http.StatusBadRequest)
		a.logger.Debug("job name is not valid UTF-8", "job", job)
		return nil, false
	}
	labels["job"] = job
	return labels, true
}

// push returns the handler for PUT (OpPut) and POST (OpPost) pushes.
func (a *API) push(op fsm.Op, jobBase64 bool) http.HandlerFunc {
	return a.metrics.instrumentPush(func(w http.ResponseWriter, r *http.Request) {
		labels, ok := a.groupingLabels(w, r, jobBase64)
		if !ok || !a.mayWrite(w, r, labels["job"]) {
			return
		}
		body := &limitedBody{r: r.Body, left: a.maxBodyBytes()}
		r.Body = body
		limits := a.limits()
		families, err := a.parseBodyLimited(r, limits, labels)
		if body.exceeded {
			msg := fmt.Sprintf("request body (after decompression) exceeds --push.max-body-bytes=%d", a.maxBodyBytes())
			// The rest of the body is not read: close the connection
			// rather than read it to reuse the connection.
			w.Header().Set("Connection", "close")
			http.Error(w, msg, http.StatusRequestEntityTooLarge)
			a.logger.Debug("push body too large", "source", r.RemoteAddr, "limit", a.maxBodyBytes())
			return
		}
		var limit *limitError
		if errors.As(err, &limit) {
			w.Header().Set("Connection", "close")
			http.Error(w, err.Error(), http.StatusBadRequest)
			a.logger.Debug("push exceeds a limit", "source", r.RemoteAddr, "err", err)
			return
		}
		if err != nil && isTimeout(err) {
			http.Error(w, "timed out reading the request body (--web.read-timeout)", http.StatusRequestTimeout)
			a.logger.Debug("push body read timed out", "source", r.RemoteAddr, "err", err)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			a.logger.Debug("failed to parse text", "source", r.RemoteAddr, "err", err)
			return
		}
		if err := limits.check(labels, families); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			a.logger.Debug("push exceeds a limit", "source", r.RemoteAddr, "err", err)
			return
		}
		expiry, err := requestExpiry(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			a.logger.Debug("push with an invalid expiry", "source", r.RemoteAddr, "err", err)
			return
		}
		cmd := &fsm.Command{
			Op:           op,
			Labels:       labels,
			Families:     families,
			TimeUnixNano: a.opts.Now().UnixNano(),
			Unchecked:    a.opts.DisableConsistencyCheck,
			ExpireAfter:  expiry,
			PushedBy:     fsm.PushedBy{User: a.requestUser(r), RemoteAddr: r.RemoteAddr},
		}
		if err := a.checkNames(families); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			a.logger.Debug("push with invalid names", "source", r.RemoteAddr, "err", err)
			return
		}
		res, err := a.opts.Submitter.Submit(r.Context(), cmd)
		if err != nil {
			a.writeSubmitError(w, r, err)
			return
		}
		setIndexHeader(w, res)
		var quota *fsm.QuotaError
		if errors.As(res.Err, &quota) {
			http.Error(w, quota.Msg, http.StatusTooManyRequests)
			a.logger.Warn("push refused by a quota", "method", r.Method, "source", r.RemoteAddr, "err", quota.Msg)
			return
		}
		if a.opts.DisableConsistencyCheck {
			// Upstream answers unchecked pushes before processing them.
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if res.Err != nil {
			http.Error(w, pushRejectedPrefix+res.Err.Error(), http.StatusBadRequest)
			a.logger.Error("pushed metrics are invalid or inconsistent with existing metrics",
				"method", r.Method, "source", r.RemoteAddr, "err", res.Err)
		}
	})
}

// limitError is a push limit found exceeded while the body was read:
// reading stopped there.
type limitError struct{ err error }

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// parseBody reads the pushed metric families with only the series limit
// (errTooManySeries); see parseBodyLimited.
func (a *API) parseBody(r *http.Request, maxSeries int) ([]*dto.MetricFamily, error) {
	fams, err := a.parseBodyLimited(r, pushLimits{series: maxSeries}, nil)
	if errors.Is(err, errTooManySeries) {
		return nil, errTooManySeries
	}
	return fams, err
}

// parseBodyLimited reads the pushed metric families: delimited protobuf
// when the Content-Type says so, the text format otherwise. When a name
// appears twice, the last family wins, as upstream. Reading stops with a
// *limitError as soon as the body holds more series than limits allow or,
// when the label limits are set, a series with too many labels or too
// long a value (grouping labels counted as pushLimits.check counts them).
func (a *API) parseBodyLimited(r *http.Request, limits pushLimits, grouping map[string]string) ([]*dto.MetricFamily, error) {
	var labels *labelLimits
	if limits.labels > 0 && limits.valueBytes > 0 {
		labels = &labelLimits{limits: limits, grouping: grouping}
	}
	tooMany := &limitError{fmt.Errorf("%w: %s", errTooManySeries, limits.seriesMessage())}
	var byName map[string]*dto.MetricFamily
	mediaType, params, ctErr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctErr == nil && mediaType == "application/vnd.google.protobuf" &&
		params["encoding"] == "delimited" && params["proto"] == "io.prometheus.client.MetricFamily" {
		byName = map[string]*dto.MetricFamily{}
		in := bufio.NewReader(r.Body)
		var series protobufSeries
		for {
			b, err := readDelimited(in, in, a.maxBodyBytes())
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if series.add(b) > limits.series {
				return nil, tooMany
			}
			mf := &dto.MetricFamily{}
			if err := proto.Unmarshal(b, mf); err != nil {
				return nil, err
			}
			if labels != nil {
				// Checked family by family, before the next is read.
				if err := limits.checkLabels(grouping, mf); err != nil {
					return nil, &limitError{err}
				}
			}
			byName[mf.GetName()] = mf
		}
	} else {
		counter := newTextSeriesCounter(r.Body, limits.series)
		counter.labels = labels
		var err error
		parser := a.textParser()
		byName, err = parser.TextToMetricFamilies(counter)
		a.textParsers.Put(parser)
		switch {
		case counter.exceeded:
			return nil, tooMany
		case counter.err != nil:
			return nil, &limitError{counter.err}
		case err != nil:
			return nil, err
		}
	}
	names := slices.Sorted(maps.Keys(byName))
	out := make([]*dto.MetricFamily, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out, nil
}

// textParser returns a text parser of this API's name validation, to be
// put back in a.textParsers once its result is taken (the parser keeps
// nothing of it but references, dropped on its next use).
func (a *API) textParser() *expfmt.TextParser {
	if p, ok := a.textParsers.Get().(*expfmt.TextParser); ok {
		return p
	}
	p := expfmt.NewTextParser(a.validation)
	return &p
}

// checkNames holds a protobuf push to the name validation scheme of this
// node, as the text parser does for text pushes: with legacy validation
// (the default), metric and label names must be legacy names, so that
// every name is exposed as pushed and no two names escape to one.
func (a *API) checkNames(families []*dto.MetricFamily) error {
	if a.validation != model.LegacyValidation {
		return nil
	}
	for _, mf := range families {
		if !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
			return fmt.Errorf("invalid metric name %q (UTF-8 names need --push.enable-utf8-names)", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !model.LegacyValidation.IsValidLabelName(lp.GetName()) {
					return fmt.Errorf("metric %q has an invalid label name %q (UTF-8 names need --push.enable-utf8-names)", mf.GetName(), lp.GetName())
				}
			}
		}
	}
	return nil
}

// DefaultMaxBodyBytes bounds a push body after decompression when
// Options.MaxBodyBytes is not set.
const DefaultMaxBodyBytes = 64 << 20

func (a *API) maxBodyBytes() int64 {
	if a.opts.MaxBodyBytes > 0 {
		return a.opts.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// errBodyTooLarge is what a limitedBody returns once the limit is passed.
var errBodyTooLarge = errors.New("request body too large")

// limitedBody reads at most left bytes and remembers if there were more,
// so that a decompression bomb is cut off after the limit, not after it
// filled the memory.
type limitedBody struct {
	r        io.ReadCloser
	left     int64
	exceeded bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte tells a body of exactly the limit from a larger one.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.exceeded = true
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.r.Close() }

// IndexHeader carries the raft log index an acknowledged write was applied
// at: writes to one grouping key are ordered by it (a header upstream does
// not send; clients may ignore it).
const IndexHeader = "X-Pushgateway-Raft-Index"

func setIndexHeader(w http.ResponseWriter, res *fsm.Result) {
	if res != nil && res.Index > 0 {
		w.Header().Set(IndexHeader, strconv.FormatUint(res.Index, 10))
	}
}

// clusterErrorCode maps an error from the cluster to an HTTP status: 400
// for a command that is not well-formed, 507 when a node's storage is
// below its free-space reserve, 503 when the operation certainly did not
// happen, 504 when its outcome is unknown, otherwise fallback.
func clusterErrorCode(err error, fallback int) int {
	var unavailable interface{ Unavailable() bool }
	var unknown interface{ OutcomeUnknown() bool }
	var storage interface{ InsufficientStorage() bool }
	switch {
	case errors.Is(err, fsm.ErrInvalidCommand):
		return http.StatusBadRequest
	case errors.As(err, &storage) && storage.InsufficientStorage():
		return http.StatusInsufficientStorage
	case errors.As(err, &unavailable) && unavailable.Unavailable():
		return http.StatusServiceUnavailable
	case errors.As(err, &unknown) && unknown.OutcomeUnknown():
		return http.StatusGatewayTimeout
	}
	return fallback
}

// writeSubmitError answers a write the cluster could not complete.
func (a *API) writeSubmitError(w http.ResponseWriter, r *http.Request, err error) {
	code := clusterErrorCode(err, http.StatusInternalServerError)
	http.Error(w, err.Error(), code)
	level := slog.LevelWarn
	if code < http.StatusInternalServerError {
		level = slog.LevelDebug
	}
	a.logger.Log(r.Context(), level, "write not completed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
}

// delete returns the handler for DELETE of a group.
func (a *API) delete(jobBase64 bool) http.HandlerFunc {
	return a.metrics.instrument("delete", func(w http.ResponseWriter, r *http.Request) {
		labels, ok := a.groupingLabels(w, r, jobBase64)
		if !ok || !a.mayWrite(w, r, labels["job"]) {
			return
		}
		a.submitAccepted(w, r, &fsm.Command{Op: fsm.OpDelete, Labels: labels, TimeUnixNano: a.opts.Now().UnixNano()})
	})
}

// wipe returns the admin handler that deletes every group.
func (a *API) wipe(w http.ResponseWriter, r *http.Request) {
	a.logger.Debug("start wiping metric store")
	a.submitAccepted(w, r, &fsm.Command{Op: fsm.OpWipe, TimeUnixNano: a.opts.Now().UnixNano()})
}

// submitAccepted submits a delete or wipe and answers 202 once applied.
func (a *API) submitAccepted(w http.ResponseWriter, r *http.Request, cmd *fsm.Command) {
	res, err := a.opts.Submitter.Submit(r.Context(), cmd)
	if err != nil {
		a.writeSubmitError(w, r, err)
		return
	}
	setIndexHeader(w, res)
	w.WriteHeader(http.StatusAccepted)
}

// decodeRequest unwraps gzip or snappy request bodies (Content-Encoding is
// matched case-insensitively, as in upstream 1.11).
func decodeRequest(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer r.Body.Close()
		switch strings.ToLower(r.Header.Get("Content-Encoding")) {
		case "gzip":
			gr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			defer gr.Close()
			r.Body = gr
		case "snappy":
			r.Body = io.NopCloser(snappy.NewReader(r.Body))
		}
		h.ServeHTTP(w, r)
	})
}
