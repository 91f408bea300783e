package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/config"

	"github.com/pushgateway-cluster/pushgateway-cluster/cluster"
	"github.com/pushgateway-cluster/pushgateway-cluster/fsm"
	"github.com/pushgateway-cluster/pushgateway-cluster/httpapi"
)

const adminUsage = `usage: pushgateway-cluster admin <command> [flags]

Commands that talk to a running node's API (the admin ones need
--web.enable-admin-api on that node):

  snapshot             write a consistent snapshot of the state to stdout (or --output)
  restore              replace the state of the whole cluster with a snapshot from stdin (or --input)
  members              list the members: status, suffrage, leader, addresses
  remove-member NAME   remove a member that will not come back from the raft configuration
  transfer-leadership  hand leadership to another voter (--to=NAME, or any)

Common flags: --url=http://127.0.0.1:9091 (the node's API, with its route prefix),
--http.config.file=FILE (basic_auth, tls_config, ... as for healthcheck), --timeout=DURATION.

Offline command, on the data directory of a STOPPED node:

  recover --storage.path=DIR [--voters=name=host:port,...]
                       make the node start as a member of a new configuration of the given
                       voters (default: the node alone): the way out of a lost quorum

Run "pushgateway-cluster admin <command> -h" for the flags of a command.
`

// admin runs the operator sub-commands and returns the exit status: 0 on
// success, 1 when the operation failed, 2 on usage errors.
func admin(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, adminUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "snapshot", "restore", "members", "remove-member", "transfer-leadership":
		err = adminHTTP(cmd, args, stdin, stdout, stderr)
	case "recover":
		err = adminRecover(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pushgateway-cluster admin: unknown command %q\n\n%s", cmd, adminUsage)
		return 2
	}
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "pushgateway-cluster admin %s: %v\n", cmd, err)
		return 2
	default:
		fmt.Fprintf(stderr, "pushgateway-cluster admin %s: %v\n", cmd, err)
		return 1
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseArgs parses flags that may come before and after positional
// arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// adminHTTP runs a command against a node's API.
func adminHTTP(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:9091", "URL of the node's API, with its route prefix")
	httpConfig := fs.String("http.config.file", "", "HTTP client configuration (basic_auth, tls_config, ...) for an API protected by --web.config.file")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long the request may take")
	var output, input, to *string
	var asJSON *bool
	switch cmd {
	case "snapshot":
		output = fs.String("output", "", "file to write the snapshot to (written only when complete); default stdout")
	case "restore":
		input = fs.String("input", "", "file to read the snapshot from; default stdin")
	case "members":
		asJSON = fs.Bool("json", false, "print the answer of /api/v1/cluster as JSON")
	case "transfer-leadership":
		to = fs.String("to", "", "name of the voter to hand leadership to; default: the most up-to-date one")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	wantPos := 0
	if cmd == "remove-member" {
		wantPos = 1
	}
	if len(pos) != wantPos {
		if wantPos == 1 {
			return usageError{"give the name of the member to remove"}
		}
		return usageError{fmt.Sprintf("unexpected arguments %q", pos)}
	}
	client, err := adminClient(*httpConfig, *timeout)
	if err != nil {
		return usageError{err.Error()}
	}
	api := strings.TrimSuffix(*base, "/") + "/api/v1"

	switch cmd {
	case "snapshot":
		return adminSnapshot(client, api, *output, stdout, stderr)
	case "restore":
		return adminRestore(client, api, *input, stdin, stdout)
	case "members":
		return adminMembers(client, api, *asJSON, stdout)
	case "remove-member":
		_, err := call(client, http.MethodDelete, api+"/admin/cluster/members/"+url.PathEscape(pos[0]), nil, http.StatusAccepted)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s from the raft configuration\n", pos[0])
		return nil
	case "transfer-leadership":
		u := api + "/admin/cluster/transfer-leadership"
		if *to != "" {
			u += "?to=" + url.QueryEscape(*to)
		}
		body, err := call(client, http.MethodPost, u, nil, http.StatusOK)
		if err != nil {
			return err
		}
		var env struct {
			Data struct {
				Leader string `json:"leader"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return fmt.Errorf("unexpected answer %q: %v", body, err)
		}
		fmt.Fprintf(stdout, "leader is now %s\n", env.Data.Leader)
		return nil
	}
	return usageError{"unknown command " + cmd}
}

// adminClient returns an HTTP client, configured by an --http.config.file
// like healthcheck's (promtool's format).
func adminClient(path string, timeout time.Duration) (*http.Client, error) {
	client := &http.Client{}
	if path != "" {
		cfg, _, err := config.LoadHTTPConfigFile(path)
		if err != nil {
			return nil, err
		}
		if client, err = config.NewClientFromConfig(*cfg, "admin"); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
	}
	client.Timeout = timeout
	return client, nil
}

// call sends a request and returns the body of an answer with status want;
// any other answer is an error carrying the API's message.
func call(client *http.Client, method, u string, body io.Reader, want int) ([]byte, error) {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, u, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s answered %s: %s%s", method, u, resp.Status, apiError(b), adminHint(resp.StatusCode))
	}
	return b, nil
}

// apiError extracts the message of the API's error envelope.
func apiError(b []byte) string {
	var env struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != "" {
		return env.Error
	}
	return strings.TrimSpace(string(b))
}

func adminHint(code int) string {
	if code == http.StatusNotFound {
		return " (is --web.enable-admin-api on, and --url the API with its route prefix?)"
	}
	return ""
}

// adminSnapshot downloads a snapshot and checks it completely (checksum
// included) before it reports success; with --output, the file appears only
// when the snapshot is complete.
func adminSnapshot(client *http.Client, api, output string, stdout, stderr io.Writer) (err error) {
	resp, err := client.Get(api + "/admin/snapshot")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s/admin/snapshot answered %s: %s%s", api, resp.Status, apiError(b), adminHint(resp.StatusCode))
	}
	out := stdout
	if output != "" {
		tmp, err := os.CreateTemp(filepath.Dir(output), filepath.Base(output)+".part.")
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		out = tmp
		defer func() {
			if err != nil {
				return
			}
			if err = tmp.Sync(); err == nil {
				if err = tmp.Close(); err == nil {
					err = os.Rename(tmp.Name(), output)
				}
			}
		}()
	}
	cw := &countWriter{w: out}
	info, err := fsm.CheckSnapshot(io.TeeReader(resp.Body, cw))
	if err != nil {
		return fmt.Errorf("the snapshot received is incomplete or damaged: %w", err)
	}
	if cw.err != nil {
		return fmt.Errorf("write snapshot: %w", cw.err)
	}
	fmt.Fprintf(stderr, "snapshot: %d groups at raft index %d, %d bytes\n", info.Groups, info.AppliedIndex, cw.n)
	return nil
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// adminRestore checks a snapshot locally, then replaces the cluster's state
// with it.
func adminRestore(client *http.Client, api, input string, stdin io.Reader, stdout io.Writer) error {
	var b []byte
	var err error
	if input != "" {
		b, err = os.ReadFile(input)
	} else {
		b, err = io.ReadAll(io.LimitReader(stdin, httpapi.MaxRestoreBytes+1))
	}
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	info, err := fsm.ValidateSnapshot(b)
	if err != nil {
		return fmt.Errorf("not restoring: %w", err)
	}
	body, err := call(client, http.MethodPut, api+"/admin/restore", bytes.NewReader(b), http.StatusOK)
	if err != nil {
		return err
	}
	var env struct {
		Data struct {
			Groups int    `json:"groups"`
			Index  uint64 `json:"index"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("unexpected answer %q: %v", body, err)
	}
	fmt.Fprintf(stdout, "restored %d groups (snapshot of raft index %d) at raft index %d\n", env.Data.Groups, info.AppliedIndex, env.Data.Index)
	return nil
}

// adminMembers prints /api/v1/cluster as a table (or as JSON).
func adminMembers(client *http.Client, api string, asJSON bool, stdout io.Writer) error {
	body, err := call(client, http.MethodGet, api+"/cluster", nil, http.StatusOK)
	if err != nil {
		return err
	}
	if asJSON {
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return fmt.Errorf("unexpected answer %q: %v", body, err)
		}
		var out bytes.Buffer
		if err := json.Indent(&out, env.Data, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err := out.WriteTo(stdout)
		return err
	}
	var env struct {
		Data cluster.Status `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("unexpected answer %q: %v", body, err)
	}
	st := env.Data
	fmt.Fprintf(stdout, "asked %s (%s, term %d, commit %d, applied %d); leader: %s\n\n",
		st.Self, st.Raft.State, st.Raft.Term, st.Raft.CommitIndex, st.Raft.AppliedIndex, orNone(st.Leader))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tSUFFRAGE\tLEADER\tRAFT ADDRESS\tGOSSIP ADDRESS\tAPI URL")
	for _, m := range st.Members {
		leader := ""
		if m.Name == st.Leader {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Status, m.Suffrage, leader, orNone(m.RaftAddress), orNone(m.GossipAddress), orNone(m.APIURL))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// adminRecover rewrites a stopped node's raft state with a new
// configuration (see cluster.Recover).
func adminRecover(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	storage := fs.String("storage.path", "data/", "the --storage.path of the stopped node")
	votersFlag := fs.String("voters", "", "the new configuration: name=raft-host:port,... (must include this node); default: this node alone, at its last raft address")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", pos)}
	}
	voters, err := cluster.ParseVoters(*votersFlag)
	if err != nil {
		return usageError{err.Error()}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := cluster.Recover(*storage, voters, func() *fsm.FSM {
		state, err := newState(newSelfRegistry())
		if err != nil {
			panic(err)
		}
		return state
	}, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recovered %s: its raft configuration is now\n", *storage)
	for _, s := range cfg.Servers {
		fmt.Fprintf(stdout, "  %s at %s (voter)\n", s.ID, s.Address)
	}
	fmt.Fprintln(stdout, "Start the node(s) again; new nodes join through --cluster.peer as usual.")
	return nil
}
