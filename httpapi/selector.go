package httpapi

import (
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
)

// matchParam is the query parameter of series selectors over grouping
// labels (GET /api/v1/metrics, the admin delete), as in Prometheus' API.
const matchParam = "match[]"

// selectorParser is Prometheus' own PromQL parser; only metric selectors
// are parsed with it.
var selectorParser = parser.NewParser(parser.Options{})

// parseSelectors parses match[] values with Prometheus' parser into the
// state machine's selectors, and checks them as the state machine will
// (fsm.CompileSelectors): a selector that matches everything by accident,
// or one on the metric name, is an error.
func parseSelectors(values []string) ([]fsm.Selector, fsm.CompiledSelectors, error) {
	sels := make([]fsm.Selector, 0, len(values))
	for _, v := range values {
		ms, err := selectorParser.ParseMetricSelector(v)
		if err != nil {
			return nil, nil, fmt.Errorf("match[] %q: %w", v, err)
		}
		sel := make(fsm.Selector, 0, len(ms))
		for _, m := range ms {
			sel = append(sel, fsm.Matcher{Name: m.Name, Type: fsm.MatchType(m.Type), Value: m.Value})
		}
		sels = append(sels, sel)
	}
	cs, err := fsm.CompileSelectors(sels)
	if err != nil {
		return nil, nil, fmt.Errorf("match[]: %w", err)
	}
	return sels, cs, nil
}

// requestSelectors returns the request's match[] selectors; ok is false
// when there are none (compiled is nil then).
func requestSelectors(r *http.Request) (sels []fsm.Selector, compiled fsm.CompiledSelectors, ok bool, err error) {
	values := r.URL.Query()[matchParam]
	if len(values) == 0 {
		return nil, nil, false, nil
	}
	sels, compiled, err = parseSelectors(values)
	return sels, compiled, true, err
}

// matchingGroups returns the groups any of the selectors matches, in the
// order given.
func matchingGroups(groups []*fsm.Group, cs fsm.CompiledSelectors) []*fsm.Group {
	var out []*fsm.Group
	for _, g := range groups {
		if cs.Matches(g.Labels) {
			out = append(out, g)
		}
	}
	return out
}
