// Package upstreamfile reads the persistence file of the upstream
// Prometheus Pushgateway (--persistence.file), to import it into a cluster.
//
// Upstream writes its whole store with encoding/gob: a map from grouping key
// to a group of grouping labels and metric families, each family with the
// time of the push that wrote it and the family itself, which gob carries as
// the protobuf encoding of io.prometheus.client.MetricFamily. Upstream 1.0
// and later key the map by a string; earlier versions by a uint64 hash. The
// keys are not needed (they are derived from the labels), so both decode.
// The types below have the same gob shape as upstream's storage types; gob
// matches by field names and kinds, not by type names.
package upstreamfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// metricGroup has the gob shape of upstream's storage.MetricGroup.
type metricGroup struct {
	Labels  map[string]string
	Metrics map[string]timestampedMetricFamily
}

// timestampedMetricFamily has the gob shape of upstream's
// storage.TimestampedMetricFamily.
type timestampedMetricFamily struct {
	Timestamp            time.Time
	GobbableMetricFamily *gobbableMetricFamily
}

// gobbableMetricFamily is a MetricFamily that gob carries as its protobuf
// encoding, as upstream's storage.GobbableMetricFamily.
type gobbableMetricFamily dto.MetricFamily

// GobDecode implements gob.GobDecoder.
func (g *gobbableMetricFamily) GobDecode(b []byte) error {
	return proto.Unmarshal(b, (*dto.MetricFamily)(g))
}

// GobEncode implements gob.GobEncoder (used by tests to write files).
func (g *gobbableMetricFamily) GobEncode() ([]byte, error) {
	return proto.Marshal((*dto.MetricFamily)(g))
}

// File is a decoded persistence file.
type File struct {
	// Path is where it was read from.
	Path string
	// Digest is the SHA-256 of its bytes, hex encoded.
	Digest string
	// Groups are its groups, sorted by grouping key, families with the
	// times of the pushes that wrote them.
	Groups []*fsm.Group
}

// Source describes the file for the import record.
func (f *File) Source() string {
	return fmt.Sprintf("%s (sha256:%s)", f.Path, f.Digest)
}

// Load reads and decodes the file at path. A missing file gives an error
// that wraps os.ErrNotExist.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	groups, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("upstream persistence file %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	return &File{Path: path, Digest: hex.EncodeToString(sum[:]), Groups: groups}, nil
}

// Decode decodes the bytes of a persistence file into groups, sorted by
// grouping key. Every group must have a job label and valid label names,
// and no metric may carry a timestamp (upstream never stores one).
func Decode(b []byte) ([]*fsm.Group, error) {
	var byString map[string]metricGroup
	var raw []metricGroup
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&byString); err == nil {
		for _, g := range byString {
			raw = append(raw, g)
		}
	} else {
		// Upstream before 1.0 keyed groups by a uint64 hash.
		var byHash map[uint64]metricGroup
		if err2 := gob.NewDecoder(bytes.NewReader(b)).Decode(&byHash); err2 != nil {
			return nil, fmt.Errorf("not a Pushgateway persistence file: %w", err)
		}
		for _, g := range byHash {
			raw = append(raw, g)
		}
	}
	out := make([]*fsm.Group, 0, len(raw))
	seen := map[string]bool{}
	for _, mg := range raw {
		g, err := convert(mg)
		if err != nil {
			return nil, err
		}
		if seen[g.Key] {
			return nil, fmt.Errorf("group %v appears twice", g.Labels)
		}
		seen[g.Key] = true
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func convert(mg metricGroup) (*fsm.Group, error) {
	labels := make(map[string]string, len(mg.Labels))
	for n, v := range mg.Labels {
		if !model.UTF8Validation.IsValidLabelName(n) || strings.HasPrefix(n, model.ReservedLabelPrefix) {
			return nil, fmt.Errorf("group %v: invalid grouping label name %q", mg.Labels, n)
		}
		labels[n] = v
	}
	if labels["job"] == "" {
		return nil, fmt.Errorf("group %v has no job label", mg.Labels)
	}
	fams := make([]*fsm.Family, 0, len(mg.Metrics))
	for name, tmf := range mg.Metrics {
		if tmf.GobbableMetricFamily == nil {
			return nil, fmt.Errorf("group %v: family %q is empty", labels, name)
		}
		mf := (*dto.MetricFamily)(tmf.GobbableMetricFamily)
		if mf.GetName() != name {
			return nil, fmt.Errorf("group %v: family stored as %q is named %q", labels, name, mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			if m.TimestampMs != nil {
				return nil, fmt.Errorf("group %v: family %q has a metric with a timestamp", labels, name)
			}
		}
		var ts int64
		if !tmf.Timestamp.IsZero() {
			ts = tmf.Timestamp.UnixNano()
		}
		fams = append(fams, fsm.NewFamily(mf, ts))
	}
	if len(fams) == 0 {
		return nil, errors.New("group " + fmt.Sprint(labels) + " has no metric families")
	}
	return &fsm.Group{Key: fsm.GroupingKey(labels), Labels: fsm.LabelsOf(labels), Families: fsm.NewFamilies(fams)}, nil
}
