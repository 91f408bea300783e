package fsm

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// Delete by selector (OpDeleteMatching): series selectors over grouping
// labels, as Prometheus' match[] parameters are over series. The HTTP
// layer parses them with Prometheus' own parser; the command carries the
// matchers, and Apply removes every group that any selector matches, so
// every node removes exactly the same set at the same log position.

// MatchType is how a Matcher compares, numbered as Prometheus'
// labels.MatchType.
type MatchType uint8

// The match types.
const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

// String returns the operator as written in a selector.
func (t MatchType) String() string {
	switch t {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	}
	return fmt.Sprintf("MatchType(%d)", uint8(t))
}

// Matcher matches one grouping label; a label the group lacks has the
// value "". Regular expressions are anchored at both ends, as in
// Prometheus.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
}

// Selector is a set of matchers that must all match.
type Selector []Matcher

// Limits of a delete-by-selector command.
const (
	maxSelectors        = 64
	maxMatchersPerSel   = 64
	maxMatcherValueSize = 4096
)

// compiledMatcher is a Matcher ready to match.
type compiledMatcher struct {
	Matcher
	re *regexp.Regexp
}

func (m compiledMatcher) matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

func compileMatcher(m Matcher) (compiledMatcher, error) {
	cm := compiledMatcher{Matcher: m}
	if m.Name == "" || !utf8.ValidString(m.Name) {
		return cm, fmt.Errorf("matcher with an invalid label name %q", m.Name)
	}
	if m.Name == "__name__" {
		return cm, errors.New("a selector matches grouping labels; a metric name (__name__) has no meaning here")
	}
	if len(m.Value) > maxMatcherValueSize || !utf8.ValidString(m.Value) {
		return cm, fmt.Errorf("matcher %s: value longer than %d bytes or not valid UTF-8", m.Name, maxMatcherValueSize)
	}
	switch m.Type {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		// The value alone must be a regular expression: wrapped unchecked,
		// "a)|(.*" would become one that matches everything.
		if _, err := syntax.Parse(m.Value, syntax.Perl|syntax.DotNL); err != nil {
			return cm, fmt.Errorf("matcher %s%s%q: %w", m.Name, m.Type, m.Value, err)
		}
		re, err := regexp.Compile("^(?s:" + m.Value + ")$")
		if err != nil {
			return cm, fmt.Errorf("matcher %s%s%q: %w", m.Name, m.Type, m.Value, err)
		}
		cm.re = re
	default:
		return cm, fmt.Errorf("matcher %s: unknown match type %d", m.Name, m.Type)
	}
	return cm, nil
}

// CompiledSelectors are selectors ready to match label sets (see
// CompileSelectors).
type CompiledSelectors [][]compiledMatcher

// CompileSelectors checks selectors and readies them for matching. As in
// Prometheus, a selector whose matchers all match the empty string (such
// as {job=~".*"}) is refused: it would match everything by accident.
func CompileSelectors(sels []Selector) (CompiledSelectors, error) {
	if len(sels) == 0 {
		return nil, errors.New("no selector")
	}
	if len(sels) > maxSelectors {
		return nil, fmt.Errorf("%d selectors, at most %d", len(sels), maxSelectors)
	}
	out := make(CompiledSelectors, len(sels))
	for i, sel := range sels {
		if len(sel) > maxMatchersPerSel {
			return nil, fmt.Errorf("selector with %d matchers, at most %d", len(sel), maxMatchersPerSel)
		}
		nonEmpty := false
		for _, m := range sel {
			cm, err := compileMatcher(m)
			if err != nil {
				return nil, err
			}
			if !cm.matches("") {
				nonEmpty = true
			}
			out[i] = append(out[i], cm)
		}
		if !nonEmpty {
			return nil, fmt.Errorf("selector %s: at least one matcher must not match the empty string", sel)
		}
	}
	return out, nil
}

// String writes the selector as Prometheus would.
func (sel Selector) String() string {
	s := "{"
	for i, m := range sel {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s%s%q", m.Name, m.Type, m.Value)
	}
	return s + "}"
}

// Matches reports whether any of the selectors matches the grouping labels.
func (cs CompiledSelectors) Matches(labels GroupLabels) bool {
	for _, sel := range cs {
		all := true
		for _, m := range sel {
			if !m.matches(labels.Get(m.Name)) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func checkDeleteMatching(cmd *Command, _ bool) error {
	_, err := CompileSelectors(cmd.Selectors)
	return err
}

// applyDeleteMatching removes every group any selector matches.
func (s *FSM) applyDeleteMatching(cmd *Command) *Result {
	cs, err := CompileSelectors(cmd.Selectors)
	if err != nil { // checked before; Apply stays total anyway
		return &Result{Err: fmt.Errorf("%w: %v", ErrInvalidCommand, err)}
	}
	for key, g := range s.groups {
		if cs.Matches(g.Labels) {
			s.setGroup(key, nil)
		}
	}
	return &Result{}
}
