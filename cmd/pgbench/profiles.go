package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Profiles (--profile-dir=DIR): at the largest G, pgbench takes from each
// of our targets (its first node) a heap profile right after the fill (and
// after the soak, with --soak) and a CPU profile over the push phase with
// the most clients, through the node's /debug/pprof, keeps the files under
// DIR and puts the top of each (go tool pprof -top) in the report: where
// the memory and the time of the largest store go.

// profileTopNodes is how many functions a summary lists.
const profileTopNodes = 12

// profileSummary is one profile in the report.
type profileSummary struct {
	title       string // e.g. "G=100000 ours-1: heap in use after the fill"
	file        string // where the profile was written
	sampleIndex string // what the summary ranks by: inuse_space, cpu
	top         string // go tool pprof -top output, once summarised
}

// profilePath is where the profile kind of target at G goes.
func (c *config) profilePath(target string, G int, kind string) string {
	return filepath.Join(c.profileDir, fmt.Sprintf("%s-G%d-%s.pb.gz", target, G, kind))
}

// getPprof returns the body of GET url (a /debug/pprof endpoint).
func getPprof(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profile %s: %s: %s", url, resp.Status, tail(string(body), 200))
	}
	return body, nil
}

// fetchProfile saves GET url (a /debug/pprof endpoint) to file.
func fetchProfile(ctx context.Context, client *http.Client, url, file string) error {
	body, err := getPprof(ctx, client, url)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return writeFile(file, body)
}

// heapProfile saves the heap profile of node (after a collection, so
// in-use figures are current) to file.
func (l *loader) heapProfile(ctx context.Context, node, file string) error {
	return fetchProfile(ctx, l.client, node+"/debug/pprof/heap?gc=1", file)
}

// heapAllocLine is the live heap in a heap profile's text form (debug=1
// ends with the runtime's memory statistics).
var heapAllocLine = regexp.MustCompile(`(?m)^# HeapAlloc = (\d+)$`)

// liveHeap returns node's heap in use right after a collection: the heap
// profile endpoint collects first with gc=1, and its text form ends with
// the runtime's statistics.
func (l *loader) liveHeap(ctx context.Context, node string) (float64, error) {
	body, err := getPprof(ctx, l.client, node+"/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, fmt.Errorf("live heap of %s: %w", node, err)
	}
	m := heapAllocLine.FindSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("live heap of %s: no HeapAlloc in %s", node, tail(string(body), 200))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// cpuProfile starts a CPU profile of node over d and returns a channel
// that yields its error once the profile is saved to file.
func (l *loader) cpuProfile(ctx context.Context, node string, d time.Duration, file string) <-chan error {
	done := make(chan error, 1)
	secs := max(1, int(d/time.Second))
	go func() {
		done <- fetchProfile(ctx, l.client, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", node, secs), file)
	}()
	return done
}

// summarizeProfile is the top of a profile by sampleIndex (inuse_space,
// cpu), as go tool pprof -top prints it, without the lines before the
// summary ("Showing nodes accounting for ...").
func summarizeProfile(ctx context.Context, file, sampleIndex string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", profileTopNodes),
		"-sample_index="+sampleIndex, file)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w: %s", file, err, tail(errb.String(), 300))
	}
	return trimPprofTop(out.String()), nil
}

// trimPprofTop drops what go tool pprof -top prints before its summary
// line (file, build ID, type, time).
func trimPprofTop(s string) string {
	if i := strings.Index(s, "Showing nodes"); i >= 0 {
		s = s[i:]
	}
	return strings.TrimRight(s, "\n")
}

// addProfile records a profile taken; it is summarised at the end of the
// run (summarizeProfiles), when no target is running.
func (r *report) addProfile(G int, target, what, file, sampleIndex string) {
	r.profiles = append(r.profiles, profileSummary{title: fmt.Sprintf("G=%d %s: %s", G, target, what), file: file, sampleIndex: sampleIndex})
}

// summarizeProfiles fills in the top of every profile taken; one that
// cannot be read is reported in its place.
func (r *report) summarizeProfiles(ctx context.Context) {
	for i, p := range r.profiles {
		top, err := summarizeProfile(ctx, p.file, p.sampleIndex)
		if err != nil {
			top = "(not summarised: " + err.Error() + ")"
		}
		r.profiles[i].top = top
	}
}

// profilesMarkdown is the report's section of profile summaries.
func (r *report) profilesMarkdown() string {
	if len(r.profiles) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Profiles\n\n")
	fmt.Fprintf(&b, "Taken with `--profile-dir` from the first node of each of our targets at the largest G: the heap in use right after the fill and after the soak (`/debug/pprof/heap?gc=1`) and the CPU over the push phase with %d clients (`/debug/pprof/profile`); the top %d functions of each by `go tool pprof -top` (flat: in the function itself, cum: with what it calls). What they show is left, and why, is in the README, \"What bounds the figures that are missed\" (under \"A million series\").\n\n",
		r.cfg.clients[len(r.cfg.clients)-1], profileTopNodes)
	for _, p := range r.profiles {
		fmt.Fprintf(&b, "### %s\n\n`%s`\n\n```\n%s\n```\n\n", p.title, filepath.Base(p.file), p.top)
	}
	return b.String()
}
