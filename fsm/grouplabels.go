package fsm

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
)

// GroupLabels are a group's grouping labels, "job" among them, sorted by
// name. A stored group keeps them as one small list: a Go map of two labels
// took about 300 bytes a group, 31 MB of the heap after a fill of 100,000
// groups. Never modified once made; the zero value has none.
type GroupLabels struct {
	sorted []Label
}

// Label is one grouping label.
type Label struct {
	Name, Value string
}

// LabelsOf returns the grouping labels of m.
func LabelsOf(m map[string]string) GroupLabels {
	return groupLabels(m, sortedNames(m))
}

// groupLabels is LabelsOf with m's names already sorted.
func groupLabels(m map[string]string, names []string) GroupLabels {
	if len(names) == 0 {
		return GroupLabels{}
	}
	sorted := make([]Label, len(names))
	for i, n := range names {
		sorted[i] = Label{Name: n, Value: m[n]}
	}
	return GroupLabels{sorted: sorted}
}

// search returns the position of label name and whether the group has it.
func (l GroupLabels) search(name string) (int, bool) {
	return slices.BinarySearchFunc(l.sorted, name, func(x Label, name string) int { return strings.Compare(x.Name, name) })
}

// Lookup returns the value of label name and whether the group has it.
func (l GroupLabels) Lookup(name string) (string, bool) {
	if i, ok := l.search(name); ok {
		return l.sorted[i].Value, true
	}
	return "", false
}

// Get returns the value of label name, "" if the group has none.
func (l GroupLabels) Get(name string) string {
	v, _ := l.Lookup(name)
	return v
}

// Len returns the number of labels.
func (l GroupLabels) Len() int { return len(l.sorted) }

// All yields the labels' names and values, sorted by name.
func (l GroupLabels) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, x := range l.sorted {
			if !yield(x.Name, x.Value) {
				return
			}
		}
	}
}

// Map returns the labels as a new map.
func (l GroupLabels) Map() map[string]string {
	m := make(map[string]string, len(l.sorted))
	for _, x := range l.sorted {
		m[x.Name] = x.Value
	}
	return m
}

// String formats the labels as fmt formats their map.
func (l GroupLabels) String() string { return fmt.Sprint(l.Map()) }

// MarshalJSON encodes the labels as a JSON object, as their map.
func (l GroupLabels) MarshalJSON() ([]byte, error) { return json.Marshal(l.Map()) }

// key returns the grouping key of the labels (GroupingKey).
func (l GroupLabels) key() string { return joinGroupingKey(l.All()) }

// joinGroupingKey joins labels, sorted by name, into a grouping key: names
// and values separated by model.SeparatorByte.
func joinGroupingKey(labels iter.Seq2[string, string]) string {
	var sb strings.Builder
	first := true
	for n, v := range labels {
		if !first {
			sb.WriteByte(model.SeparatorByte)
		}
		first = false
		sb.WriteString(n)
		sb.WriteByte(model.SeparatorByte)
		sb.WriteString(v)
	}
	return sb.String()
}
