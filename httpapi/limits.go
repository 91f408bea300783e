package httpapi

import (
	"errors"
	"fmt"
	"net"

	dto "github.com/prometheus/client_model/go"
)

// Defaults for the per-push limits when the corresponding Options field
// is zero. They are far above what a batch job pushes; they exist so one
// request cannot make every node of the cluster hold an unbounded amount
// of state.
const (
	DefaultMaxSeriesPerPush   = 100_000
	DefaultMaxLabelsPerSeries = 128
	DefaultMaxLabelValueBytes = 64 << 10
)

// pushLimits are the per-push bounds, already defaulted.
type pushLimits struct {
	series, labels, valueBytes int
}

func (a *API) limits() pushLimits {
	l := pushLimits{a.opts.MaxSeriesPerPush, a.opts.MaxLabelsPerSeries, a.opts.MaxLabelValueBytes}
	if l.series <= 0 {
		l.series = DefaultMaxSeriesPerPush
	}
	if l.labels <= 0 {
		l.labels = DefaultMaxLabelsPerSeries
	}
	if l.valueBytes <= 0 {
		l.valueBytes = DefaultMaxLabelValueBytes
	}
	return l
}

// seriesMessage says that a push exceeds the series limit.
func (l pushLimits) seriesMessage() string {
	return fmt.Sprintf("push has more than %d series; the limit is --push.max-series-per-push=%d", l.series, l.series)
}

// check returns an error naming the first limit the push exceeds. A
// series counts every label it will be stored with: its own labels plus
// the grouping labels it does not already carry.
func (l pushLimits) check(grouping map[string]string, families []*dto.MetricFamily) error {
	for name, value := range grouping {
		if len(value) > l.valueBytes {
			return fmt.Errorf("grouping label %q has a value of %d bytes; the limit is --push.max-label-value-bytes=%d", name, len(value), l.valueBytes)
		}
	}
	series := 0
	for _, mf := range families {
		series += len(mf.GetMetric())
		if series > l.series {
			return errors.New(l.seriesMessage())
		}
		if err := l.checkLabels(grouping, mf); err != nil {
			return err
		}
	}
	return nil
}

// checkLabels checks the label limits of one family's metrics.
func (l pushLimits) checkLabels(grouping map[string]string, mf *dto.MetricFamily) error {
	for _, m := range mf.GetMetric() {
		n := len(grouping)
		for _, lp := range m.GetLabel() {
			if err := l.checkValue(lp.GetName(), mf.GetName(), len(lp.GetValue())); err != nil {
				return err
			}
			if _, dup := grouping[lp.GetName()]; !dup {
				n++
			}
		}
		if err := l.checkLabelCount(mf.GetName(), n); err != nil {
			return err
		}
	}
	return nil
}

// checkValue refuses a label value of more than the limit's bytes.
func (l pushLimits) checkValue(label, metric string, size int) error {
	if size > l.valueBytes {
		return fmt.Errorf("label %q of metric %q has a value of %d bytes; the limit is --push.max-label-value-bytes=%d", label, metric, size, l.valueBytes)
	}
	return nil
}

// checkLabelCount refuses a series of more than the limit's labels.
func (l pushLimits) checkLabelCount(metric string, n int) error {
	if n > l.labels {
		return fmt.Errorf("a series of metric %q has %d labels; the limit is --push.max-labels-per-series=%d", metric, n, l.labels)
	}
	return nil
}

// isTimeout reports whether err is a network deadline, as returned when a
// client sends its body slower than --web.read-timeout allows.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
