// Command pgbench runs the same HTTP workload against Debian's upstream
// Pushgateway and against pushgateway-cluster as one node and as a 3-node
// cluster, all on 127.0.0.1, and reports each figure with its ratio to
// upstream: a table per number of groups on stdout, the same as Markdown
// (BENCHMARKS.md) and a PNG plot (docs/bench.png).
//
//	go run ./cmd/pgbench [--quick] [--huge] [--rounds=N] [--targets=upstream,ours-1,ours-3] ...
//
// Every target is started fresh for every number of groups (new temp dirs,
// new ports) and killed afterwards. Phases: fill (create G groups from 16
// clients), push (PUTs to random groups for --duration, 1 and 16 clients),
// scrape (/metrics as text and as delimited protobuf, and text with gzip;
// one push before every scrape), convergence (3-node cluster only: time from
// the acknowledgement on one node until the others serve the value, and
// until they have applied the write's log index), memory (RSS after the
// fill), a snapshot of the state and a kill -9 and restart of our targets
// (restart.go); at the largest G, with --soak, a churn soak that deletes
// and re-pushes groups with new series while sampling RSS (soak.go), and
// with --profile-dir, heap and CPU profiles of our targets summarised in
// the report (profiles.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type config struct {
	binary, upstreamBin    string // as given (for the report)
	binaryAbs, upstreamAbs string // absolute: the children run in their temp dirs
	targets                []string
	groups                 []int
	huge                   bool
	upstreamMaxGroups      int
	families               int
	clients                []int
	fillClients            int
	methods                []string
	duration               time.Duration
	soak                   time.Duration
	soakCycles             int
	fillTimeout            time.Duration
	scrapes                int
	convergence            int
	convergenceTimeout     time.Duration
	rounds                 int
	outMD, outPNG          string
	profileDir             string
	startTimeout           time.Duration
	requestTimeout         time.Duration
	quick                  bool
	args                   []string // the command line, for the report
}

// largest is the largest G of the run: where the soak and the profiles
// happen.
func (c *config) largest() int {
	l := 0
	for _, g := range c.sizes() {
		l = max(l, g)
	}
	return l
}

// sizes are the group counts to run, in order.
func (c *config) sizes() []int {
	s := append([]int(nil), c.groups...)
	if c.huge {
		s = append(s, 100000)
	}
	return s
}

// targetsFor are the targets run at G groups: upstream only up to
// --upstream-max-groups (100,000 groups are for us alone).
func (c *config) targetsFor(G int) []string {
	var out []string
	for _, t := range c.targets {
		if t == targetUpstream && G > c.upstreamMaxGroups {
			continue
		}
		out = append(out, t)
	}
	return out
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("pgbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{args: args}
	var groups, clients, targets, methods string
	fs.StringVar(&cfg.binary, "binary", "./pushgateway-cluster", "our binary (make build)")
	fs.StringVar(&cfg.upstreamBin, "upstream-binary", "/usr/bin/prometheus-pushgateway", "Debian's upstream Pushgateway (installed with apt-get when missing)")
	fs.StringVar(&targets, "targets", strings.Join(allTargets, ","), "targets to run: upstream, ours-1 (one node), ours-3 (3-node cluster)")
	fs.StringVar(&groups, "groups", "100,1000,10000", "numbers of groups G")
	fs.BoolVar(&cfg.huge, "huge", false, "also run G=100,000 (our targets only)")
	fs.IntVar(&cfg.upstreamMaxGroups, "upstream-max-groups", 10000, "largest G upstream is run with")
	fs.IntVar(&cfg.families, "families", 10, "gauge families per push (M)")
	fs.StringVar(&clients, "clients", "1,16", "concurrent clients of the push phase")
	fs.IntVar(&cfg.fillClients, "fill-clients", 16, "concurrent clients of the fill")
	fs.StringVar(&methods, "method", "put", "push method(s) of the push phase: put, post or put,post")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "duration of each push phase")
	fs.DurationVar(&cfg.soak, "soak", 0, "churn soak at the largest G after the other phases: delete and re-push groups with new series for this long, sampling RSS (0: none)")
	fs.IntVar(&cfg.soakCycles, "soak-cycles", 0, "end the soak after this many delete+push cycles, --soak bounding its time, and count its half in cycles (0: the soak lasts --soak)")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "at the largest G, save a heap profile after the fill (and the soak) and a CPU profile of the push phase of each of our targets here and summarise them in the report (empty: none)")
	fs.DurationVar(&cfg.fillTimeout, "fill-timeout", 120*time.Second, "stop the fill after this long and report the groups reached")
	fs.IntVar(&cfg.scrapes, "scrapes", 20, "scrapes of /metrics per format")
	fs.IntVar(&cfg.convergence, "convergence", 200, "convergence samples (ours-3)")
	fs.DurationVar(&cfg.convergenceTimeout, "convergence-timeout", 10*time.Second, "give up on one convergence sample after this long")
	fs.IntVar(&cfg.rounds, "rounds", 1, "rounds (the order of targets alternates; figures are medians over rounds)")
	fs.StringVar(&cfg.outMD, "out-md", "BENCHMARKS.md", "Markdown report (empty: none)")
	fs.StringVar(&cfg.outPNG, "out-png", "docs/bench.png", "PNG plot (empty: none)")
	fs.DurationVar(&cfg.startTimeout, "start-timeout", 60*time.Second, "how long a target may take to be ready")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", 60*time.Second, "timeout of one HTTP request")
	fs.BoolVar(&cfg.quick, "quick", false, "smoke run: G=100,1000 and --duration=3s unless given")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick {
		if !set["groups"] {
			groups = "100,1000"
		}
		if !set["duration"] {
			cfg.duration = 3 * time.Second
		}
	}
	var err error
	if cfg.groups, err = parseInts(groups); err != nil {
		return nil, fmt.Errorf("--groups: %w", err)
	}
	if cfg.clients, err = parseInts(clients); err != nil {
		return nil, fmt.Errorf("--clients: %w", err)
	}
	if cfg.targets, err = parseList(targets, allTargets...); err != nil {
		return nil, fmt.Errorf("--targets: %w", err)
	}
	if cfg.methods, err = parseList(strings.ToLower(methods), "put", "post"); err != nil {
		return nil, fmt.Errorf("--method: %w", err)
	}
	switch {
	case cfg.families < 1 || cfg.families > 1000:
		return nil, errors.New("--families must be between 1 and 1000")
	case cfg.fillClients < 1 || cfg.fillClients > 1024:
		return nil, errors.New("--fill-clients must be between 1 and 1024")
	case cfg.duration <= 0 || cfg.duration > time.Hour:
		return nil, errors.New("--duration must be positive and at most 1h")
	case cfg.fillTimeout <= 0:
		return nil, errors.New("--fill-timeout must be positive")
	case cfg.scrapes < 1 || cfg.scrapes > 10000:
		return nil, errors.New("--scrapes must be between 1 and 10000")
	case cfg.convergence < 0 || cfg.convergence > 100000:
		return nil, errors.New("--convergence must be between 0 and 100000")
	case cfg.soak < 0:
		return nil, errors.New("--soak must not be negative")
	case cfg.soakCycles < 0:
		return nil, errors.New("--soak-cycles must not be negative")
	case cfg.soakCycles > 0 && cfg.soak == 0:
		return nil, errors.New("--soak-cycles needs --soak, the bound of the soak's time")
	case cfg.rounds < 1 || cfg.rounds > 100:
		return nil, errors.New("--rounds must be between 1 and 100")
	case cfg.startTimeout <= 0 || cfg.requestTimeout <= 0 || cfg.convergenceTimeout <= 0:
		return nil, errors.New("timeouts must be positive")
	case cfg.profileDir != "" && cfg.duration+5*time.Second > cfg.requestTimeout:
		return nil, errors.New("--profile-dir: --request-timeout must exceed --duration by 5s (a CPU profile lasts the push phase)")
	}
	for _, c := range cfg.clients {
		if c > 1024 {
			return nil, errors.New("--clients: at most 1024")
		}
	}
	for _, g := range cfg.sizes() {
		if g > 1000000 {
			return nil, errors.New("--groups: at most 1,000,000")
		}
	}
	if cfg.binaryAbs, err = filepath.Abs(cfg.binary); err != nil {
		return nil, err
	}
	if cfg.upstreamAbs, err = filepath.Abs(cfg.upstreamBin); err != nil {
		return nil, err
	}
	return cfg, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "pgbench:", err)
		os.Exit(1)
	}
}

// run is the whole tool; main only adds signal handling.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s pgbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	env := environment{}
	for _, t := range cfg.targets {
		if t == targetUpstream {
			if err := ensureUpstream(ctx, cfg.upstreamAbs, logf); err != nil {
				return err
			}
			env.upstreamVersion = versionOf(cfg.upstreamAbs)
		} else if env.oursVersion == "" {
			if err := checkExecutable(cfg.binaryAbs); err != nil {
				return fmt.Errorf("our binary: %w (build it with make build, or pass --binary)", err)
			}
			env.oursVersion = versionOf(cfg.binaryAbs)
		}
	}
	env.fill()
	rep := &report{cfg: cfg, env: env, byG: map[int]map[string]figures{}}
	began := time.Now()
	for _, G := range cfg.sizes() {
		targets := cfg.targetsFor(G)
		rounds := map[string][]figures{}
		for round := 0; round < cfg.rounds; round++ {
			order := append([]string(nil), targets...)
			if round%2 == 1 {
				for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
					order[i], order[j] = order[j], order[i]
				}
			}
			for _, t := range order {
				logf("G=%d %s (round %d/%d): starting", G, t, round+1, cfg.rounds)
				var profiled func(what, file, sampleIndex string)
				if cfg.profileDir != "" && t != targetUpstream && G == cfg.largest() && round == 0 {
					profiled = func(what, file, sampleIndex string) { rep.addProfile(G, t, what, file, sampleIndex) }
				}
				f, notes, err := runOne(ctx, cfg, t, G, profiled, logf)
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted: %w", ctx.Err())
				}
				for _, n := range notes {
					rep.addNote(G, t, n)
				}
				if err != nil {
					logf("G=%d %s: FAILED: %v", G, t, err)
					rep.failures = append(rep.failures, fmt.Sprintf("G=%d %s round %d: %v", G, t, round+1, firstLine(err.Error())))
					continue
				}
				rounds[t] = append(rounds[t], f)
			}
		}
		agg := map[string]figures{}
		for t, fs := range rounds {
			agg[t] = aggregate(fs)
		}
		rep.byG[G] = agg
		fmt.Fprintln(stdout, rep.textTable(G))
	}
	rep.elapsed = time.Since(began)
	rep.summarizeProfiles(ctx)
	if cfg.outMD != "" {
		if err := writeFile(cfg.outMD, []byte(rep.markdown())); err != nil {
			return err
		}
		logf("wrote %s", cfg.outMD)
	}
	if cfg.outPNG != "" {
		if err := writePlot(cfg.outPNG, rep); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		logf("wrote %s", cfg.outPNG)
	}
	if len(rep.failures) > 0 {
		return fmt.Errorf("%d target run(s) failed:\n  %s", len(rep.failures), strings.Join(rep.failures, "\n  "))
	}
	return nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
