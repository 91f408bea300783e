// Package deploy holds deployment files (Kubernetes manifests, systemd unit);
// this test checks that they are well-formed, consistent with each other and
// use only flags the binary knows.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v2"
)

const (
	k8sDir     = "kubernetes"
	systemdDir = "systemd"
	unitFile   = "systemd/pushgateway-cluster.service"
	envFile    = "systemd/pushgateway-cluster.default"
	binaryName = "pushgateway-cluster"
)

// binaryPath and knownFlags are set by TestMain from the built binary.
var (
	binaryPath string
	knownFlags map[string]flagInfo
)

type flagInfo struct {
	bool       bool   // --[no-]name
	repeatable bool   // "..." in the help
	def        string // default value shown by --help ("" if none)
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binaryPath = filepath.Join(dir, binaryName)
	build := exec.Command("go", "build", "-o", binaryPath, "../cmd/pushgateway-cluster")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ../cmd/pushgateway-cluster: %v\n%s", err, out)
		return 1
	}
	out, err := exec.Command(binaryPath, "--help").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s --help: %v\n%s", binaryName, err, out)
		return 1
	}
	knownFlags = parseHelp(string(out))
	if len(knownFlags) == 0 {
		fmt.Fprintf(os.Stderr, "no flags found in --help output:\n%s", out)
		return 1
	}
	return m.Run()
}

// helpFlagRe matches a flag line of kingpin's help (flags are indented by
// a few spaces, wrapped descriptions by many), e.g.
// `      --cluster.peer=CLUSTER.PEER ...`, `  -h, --[no-]help`,
// `      --storage.path="data/"`.
var helpFlagRe = regexp.MustCompile(`^\s{1,8}(?:-\w, )?--(\[no-\])?([A-Za-z0-9][A-Za-z0-9._-]*)(?:=(\S*))?(\s+\.\.\.)?`)

func parseHelp(help string) map[string]flagInfo {
	flags := map[string]flagInfo{}
	for _, line := range strings.Split(help, "\n") {
		m := helpFlagRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := m[3]
		if unq, err := strconv.Unquote(def); err == nil {
			def = unq
		} else if def != "" && strings.ToUpper(def) == def && strings.ContainsAny(def, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			def = "" // a placeholder such as CLUSTER.PEER
		}
		flags[m[2]] = flagInfo{bool: m[1] != "", repeatable: m[4] != "", def: def}
	}
	return flags
}

func TestHelpParsing(t *testing.T) {
	for name, want := range map[string]flagInfo{
		"storage.path":             {def: "data/"},
		"cluster.peer":             {repeatable: true},
		"cluster.bootstrap-expect": {def: "1"},
		"web.listen-address":       {repeatable: true, def: ":9091"},
		"web.enable-admin-api":     {bool: true},
	} {
		if got, ok := knownFlags[name]; !ok || got != want {
			t.Errorf("--help: flag %s parsed as %+v (found %v), want %+v", name, got, ok, want)
		}
	}
}

// ---------------------------------------------------------------------------
// Command lines

type arg struct {
	name  string // without "--"
	value string
	has   bool // "=value" given
}

// parseArgs splits a command line into flags; every element must be a flag.
func parseArgs(t *testing.T, where string, args []string) []arg {
	t.Helper()
	var out []arg
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%s: %q is not a --flag (the binary takes no positional arguments)", where, a)
			continue
		}
		name, value, has := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out = append(out, arg{name: name, value: value, has: has})
	}
	return out
}

// checkFlags checks that every flag exists, that non-repeatable flags appear
// once and that values fit the type suggested by the default.
func checkFlags(t *testing.T, where string, args []arg) {
	t.Helper()
	seen := map[string]int{}
	for _, a := range args {
		name := a.name
		info, ok := knownFlags[name]
		if !ok && strings.HasPrefix(name, "no-") {
			if i, ok2 := knownFlags[strings.TrimPrefix(name, "no-")]; ok2 && i.bool {
				name, info, ok = strings.TrimPrefix(name, "no-"), i, true
			}
		}
		if !ok {
			t.Errorf("%s: --%s is not a flag of %s (see --help)", where, a.name, binaryName)
			continue
		}
		seen[name]++
		if seen[name] == 2 && !info.repeatable {
			t.Errorf("%s: --%s given more than once; only the last one counts", where, name)
		}
		switch {
		case info.bool:
			if a.has {
				if _, err := strconv.ParseBool(a.value); err != nil {
					t.Errorf("%s: --%s=%q: not a boolean", where, name, a.value)
				}
			}
		case !a.has:
			t.Errorf("%s: --%s needs a value (--%s=...)", where, name, name)
		case isInt(info.def):
			if !isInt(a.value) {
				t.Errorf("%s: --%s=%q: want an integer like its default %q", where, name, a.value, info.def)
			}
		case isDuration(info.def):
			if !isDuration(a.value) {
				t.Errorf("%s: --%s=%q: want a duration like its default %q", where, name, a.value, info.def)
			}
		}
	}
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil && !isInt(s)
}

func values(args []arg, name string) []string {
	var vs []string
	for _, a := range args {
		if a.name == name {
			vs = append(vs, a.value)
		}
	}
	return vs
}

// value returns the last value of a flag, or its default from --help.
func value(args []arg, name string) string {
	if vs := values(args, name); len(vs) > 0 {
		return vs[len(vs)-1]
	}
	return knownFlags[name].def
}

func port(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q: %v", where, hostport, err)
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("%s: %q: port is not a number", where, hostport)
	}
	return n
}

// dottedFlagRe finds flag-like words (--name.with-dots) in any text.
var dottedFlagRe = regexp.MustCompile(`--((?:\[no-\])?[a-z0-9-]+\.[a-z0-9.-]*[a-z0-9])`)

// TestDocumentedFlagsExist checks every --section.flag mentioned anywhere in
// the deployment files, READMEs and comments included.
func TestDocumentedFlagsExist(t *testing.T) {
	for _, dir := range []string{k8sDir, systemdDir} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range dottedFlagRe.FindAllStringSubmatch(string(data), -1) {
				name := strings.TrimPrefix(m[1], "[no-]")
				if _, ok := knownFlags[name]; !ok {
					t.Errorf("%s mentions --%s, which %s does not have", path, name, binaryName)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Kubernetes manifests

type intOrString string

func (v *intOrString) UnmarshalYAML(unmarshal func(any) error) error {
	var x any
	if err := unmarshal(&x); err != nil {
		return err
	}
	*v = intOrString(fmt.Sprint(x))
	return nil
}

type objectMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []any             `yaml:"matchExpressions"`
}

type probe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports           []containerPort  `yaml:"ports"`
	StartupProbe    *probe           `yaml:"startupProbe"`
	LivenessProbe   *probe           `yaml:"livenessProbe"`
	ReadinessProbe  *probe           `yaml:"readinessProbe"`
	SecurityContext *securityContext `yaml:"securityContext"`
	Resources       struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
	VolumeMounts []volumeMount `yaml:"volumeMounts"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type statefulSet struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ServiceName         string        `yaml:"serviceName"`
		Replicas            *int          `yaml:"replicas"`
		PodManagementPolicy string        `yaml:"podManagementPolicy"`
		Selector            labelSelector `yaml:"selector"`
		Template            struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds *int             `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               *securityContext `yaml:"securityContext"`
				Containers                    []container      `yaml:"containers"`
				Volumes                       []struct {
					Name string `yaml:"name"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata objectMeta `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type servicePort struct {
	Name       string      `yaml:"name"`
	Port       int         `yaml:"port"`
	TargetPort intOrString `yaml:"targetPort"`
	Protocol   string      `yaml:"protocol"`
}

type service struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type relabelConfig struct {
	SourceLabels []string `yaml:"sourceLabels"`
	Separator    *string  `yaml:"separator"`
	Regex        *string  `yaml:"regex"`
	TargetLabel  string   `yaml:"targetLabel"`
	Replacement  *string  `yaml:"replacement"`
	Action       string   `yaml:"action"`
}

type serviceMonitor struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Selector  labelSelector `yaml:"selector"`
		Endpoints []struct {
			Port              string          `yaml:"port"`
			Path              string          `yaml:"path"`
			HonorLabels       bool            `yaml:"honorLabels"`
			Relabelings       []relabelConfig `yaml:"relabelings"`
			MetricRelabelings []relabelConfig `yaml:"metricRelabelings"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

type kustomization struct {
	Resources []string `yaml:"resources"`
}

type manifest struct {
	file       string
	apiVersion string
	kind       string
	name       string
	raw        []byte // the document re-encoded on its own
}

// decodeInto decodes the manifest into a typed struct.
func (m manifest) decodeInto(t *testing.T, v any) {
	t.Helper()
	if err := yaml.Unmarshal(m.raw, v); err != nil {
		t.Fatalf("%s: %s %s: %v", m.file, m.kind, m.name, err)
	}
}

// readManifests parses every YAML document of every .yaml/.yml file in dir.
func readManifests(t *testing.T, dir string) []manifest {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	var all []manifest
	for _, path := range paths {
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := decodeAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", path)
		}
		for i, doc := range docs {
			raw, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatalf("%s: document %d: %v", path, i+1, err)
			}
			var head struct {
				APIVersion string     `yaml:"apiVersion"`
				Kind       string     `yaml:"kind"`
				Metadata   objectMeta `yaml:"metadata"`
			}
			if err := yaml.Unmarshal(raw, &head); err != nil {
				t.Fatalf("%s: document %d: %v", path, i+1, err)
			}
			all = append(all, manifest{file: path, apiVersion: head.APIVersion, kind: head.Kind, name: head.Metadata.Name, raw: raw})
		}
	}
	return all
}

// decodeAll returns the non-empty documents of a multi-document stream.
func decodeAll(r io.Reader) ([]any, error) {
	dec := yaml.NewDecoder(r)
	var docs []any
	for i := 1; ; i++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// k8sObjects holds the parsed objects of deploy/kubernetes.
type k8sObjects struct {
	all            []manifest
	sts            statefulSet
	services       map[string]service
	pdb            podDisruptionBudget
	serviceMonitor serviceMonitor
	kustomization  kustomization
	kustomFile     string
}

func loadK8s(t *testing.T) *k8sObjects {
	t.Helper()
	o := &k8sObjects{services: map[string]service{}}
	count := map[string]int{}
	for _, m := range readManifests(t, k8sDir) {
		if m.kind == "Kustomization" {
			m.decodeInto(t, &o.kustomization)
			o.kustomFile = m.file
			continue
		}
		o.all = append(o.all, m)
		count[m.kind]++
		switch m.kind {
		case "StatefulSet":
			m.decodeInto(t, &o.sts)
		case "Service":
			var s service
			m.decodeInto(t, &s)
			o.services[s.Metadata.Name] = s
		case "PodDisruptionBudget":
			m.decodeInto(t, &o.pdb)
		case "ServiceMonitor":
			m.decodeInto(t, &o.serviceMonitor)
		}
	}
	for kind, want := range map[string]int{"StatefulSet": 1, "Service": 2, "PodDisruptionBudget": 1, "ServiceMonitor": 1} {
		if count[kind] != want {
			t.Fatalf("%s: %d objects of kind %s, want %d", k8sDir, count[kind], kind, want)
		}
	}
	if len(o.sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("StatefulSet %s: %d containers, want 1", o.sts.Metadata.Name, len(o.sts.Spec.Template.Spec.Containers))
	}
	return o
}

func (o *k8sObjects) container() *container { return &o.sts.Spec.Template.Spec.Containers[0] }

func (o *k8sObjects) podLabels() map[string]string { return o.sts.Spec.Template.Metadata.Labels }

// containerArgs returns the container's flags, skipping a command's program.
func (o *k8sObjects) containerArgs(t *testing.T) []arg {
	t.Helper()
	c := o.container()
	var words []string
	if len(c.Command) > 0 {
		words = append(words, c.Command[1:]...)
	}
	words = append(words, c.Args...)
	return parseArgs(t, "StatefulSet args", words)
}

// containerPort resolves a Service targetPort or probe port (name or number).
func (o *k8sObjects) containerPort(ref intOrString, protocol string) (containerPort, bool) {
	if protocol == "" {
		protocol = "TCP"
	}
	for _, p := range o.container().Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		if proto == protocol && (string(ref) == p.Name || string(ref) == strconv.Itoa(p.ContainerPort)) {
			return p, true
		}
	}
	return containerPort{}, false
}

func (o *k8sObjects) namedPort(t *testing.T, name, protocol string) containerPort {
	t.Helper()
	p, ok := o.containerPort(intOrString(name), protocol)
	if !ok || p.Name != name {
		t.Fatalf("StatefulSet: no container port named %q (%s)", name, protocol)
	}
	return p
}

func (o *k8sObjects) headless(t *testing.T) service {
	t.Helper()
	s, ok := o.services[o.sts.Spec.ServiceName]
	if !ok {
		t.Fatalf("StatefulSet serviceName %q: no such Service in %s", o.sts.Spec.ServiceName, k8sDir)
	}
	return s
}

// client is the Service that is not the StatefulSet's governing one.
func (o *k8sObjects) client(t *testing.T) service {
	t.Helper()
	for name, s := range o.services {
		if name != o.sts.Spec.ServiceName {
			return s
		}
	}
	t.Fatal("no client Service")
	return service{}
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestManifestsWellFormed(t *testing.T) {
	o := loadK8s(t)
	for _, m := range o.all {
		if m.apiVersion == "" || m.kind == "" || m.name == "" {
			t.Errorf("%s: document without apiVersion, kind or metadata.name: apiVersion=%q kind=%q name=%q", m.file, m.apiVersion, m.kind, m.name)
		}
	}
	wantAPI := map[string]string{
		"StatefulSet":         "apps/v1",
		"Service":             "v1",
		"PodDisruptionBudget": "policy/v1",
		"ServiceMonitor":      "monitoring.coreos.com/v1",
	}
	for _, m := range o.all {
		if want, ok := wantAPI[m.kind]; ok && m.apiVersion != want {
			t.Errorf("%s: %s %s has apiVersion %q, want %q", m.file, m.kind, m.name, m.apiVersion, want)
		}
		var meta struct {
			Metadata objectMeta `yaml:"metadata"`
		}
		m.decodeInto(t, &meta)
		if meta.Metadata.Namespace != "" {
			t.Errorf("%s: %s %s pins namespace %q; the manifests must work in any namespace", m.file, m.kind, m.name, meta.Metadata.Namespace)
		}
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	o := loadK8s(t)
	if o.kustomFile == "" {
		t.Fatalf("%s: no kustomization.yaml", k8sDir)
	}
	listed := map[string]bool{}
	for _, r := range o.kustomization.Resources {
		if listed[r] {
			t.Errorf("%s lists %s twice", o.kustomFile, r)
		}
		listed[r] = true
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("%s lists %s: %v", o.kustomFile, r, err)
		}
	}
	for _, m := range o.all {
		if !listed[filepath.Base(m.file)] {
			t.Errorf("%s does not list %s", o.kustomFile, filepath.Base(m.file))
		}
	}
}

func TestStatefulSet(t *testing.T) {
	o := loadK8s(t)
	sts := o.sts
	c := o.container()
	args := o.containerArgs(t)
	checkFlags(t, "StatefulSet args", args)

	if sts.Metadata.Name != binaryName {
		t.Errorf("StatefulSet is named %q, want %q", sts.Metadata.Name, binaryName)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("StatefulSet replicas = %v, want 3", sts.Spec.Replicas)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy = %q, want Parallel (all pods must start to bootstrap)", sts.Spec.PodManagementPolicy)
	}
	if got := value(args, "cluster.bootstrap-expect"); got != "3" {
		t.Errorf("--cluster.bootstrap-expect=%s, want 3", got)
	}
	if sts.Spec.Replicas != nil && strconv.Itoa(*sts.Spec.Replicas) != value(args, "cluster.bootstrap-expect") {
		t.Errorf("replicas %d and --cluster.bootstrap-expect=%s differ: the first bootstrap would not happen or happen early", *sts.Spec.Replicas, value(args, "cluster.bootstrap-expect"))
	}
	if len(sts.Spec.Selector.MatchExpressions) > 0 || !selects(sts.Spec.Selector.MatchLabels, o.podLabels()) {
		t.Errorf("StatefulSet selector %v does not select its pod template labels %v", sts.Spec.Selector.MatchLabels, o.podLabels())
	}
	if g := sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("terminationGracePeriodSeconds = %v, want at least 30 for a leadership transfer", g)
	}
	if !strings.Contains(c.Image, binaryName) {
		t.Errorf("image %q is not %s", c.Image, binaryName)
	}

	// Ports: each listen address matches the container port of that name.
	httpPort := o.namedPort(t, "http", "TCP")
	gossipTCP := o.namedPort(t, "gossip-tcp", "TCP")
	gossipUDP := o.namedPort(t, "gossip-udp", "UDP")
	raftPort := o.namedPort(t, "raft", "TCP")
	webAddrs := values(args, "web.listen-address")
	if len(webAddrs) == 0 {
		webAddrs = []string{knownFlags["web.listen-address"].def}
	}
	if len(webAddrs) != 1 || port(t, "--web.listen-address", webAddrs[0]) != httpPort.ContainerPort {
		t.Errorf("--web.listen-address %v does not match container port http (%d)", webAddrs, httpPort.ContainerPort)
	}
	gossipListen := port(t, "--cluster.listen-address", value(args, "cluster.listen-address"))
	if gossipListen != gossipTCP.ContainerPort || gossipListen != gossipUDP.ContainerPort {
		t.Errorf("--cluster.listen-address port %d does not match container ports gossip-tcp %d / gossip-udp %d", gossipListen, gossipTCP.ContainerPort, gossipUDP.ContainerPort)
	}
	if p := port(t, "--raft.listen-address", value(args, "raft.listen-address")); p != raftPort.ContainerPort {
		t.Errorf("--raft.listen-address port %d does not match container port raft %d", p, raftPort.ContainerPort)
	}

	// Downward API: stable node name, advertised pod IP.
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		} else {
			env[e.Name] = e.Value
		}
	}
	varRe := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, a := range args {
		for _, m := range varRe.FindAllStringSubmatch(a.value, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("--%s=%s refers to $(%s), which the container's env does not define (it would stay literal)", a.name, a.value, m[1])
			}
		}
	}
	wantRef := func(flagName, want string) string {
		v := value(args, flagName)
		m := varRe.FindStringSubmatch(v)
		if m == nil {
			t.Errorf("--%s=%q: want $(VAR) from the downward API field %s", flagName, v, want)
			return ""
		}
		if env[m[1]] != "fieldRef:"+want {
			t.Errorf("--%s uses $(%s) = %q, want the downward API field %s", flagName, m[1], env[m[1]], want)
		}
		return v
	}
	if v := wantRef("cluster.node-name", "metadata.name"); v != "" && v != "$(POD_NAME)" {
		t.Errorf("--cluster.node-name=%s: want exactly the pod name, stable across restarts", v)
	}
	if v := wantRef("cluster.advertise-address", "status.podIP"); v != "" && port(t, "--cluster.advertise-address", v) != gossipListen {
		t.Errorf("--cluster.advertise-address=%s: port differs from the gossip port %d", v, gossipListen)
	}
	if v := wantRef("raft.advertise-address", "status.podIP"); v != "" && port(t, "--raft.advertise-address", v) != raftPort.ContainerPort {
		t.Errorf("--raft.advertise-address=%s: port differs from the raft port %d", v, raftPort.ContainerPort)
	}

	// Peers: the headless Service's gossip port.
	headless := o.headless(t)
	peers := values(args, "cluster.peer")
	found := false
	for _, p := range peers {
		host, pp, err := net.SplitHostPort(p)
		if err != nil {
			t.Errorf("--cluster.peer=%s: %v", p, err)
			continue
		}
		if host == headless.Metadata.Name || strings.HasPrefix(host, headless.Metadata.Name+".") {
			found = true
			ok := false
			for _, sp := range headless.Spec.Ports {
				if strconv.Itoa(sp.Port) == pp && (sp.Protocol == "" || sp.Protocol == "TCP") {
					if cp, resolved := o.containerPort(sp.TargetPort, sp.Protocol); resolved && cp.ContainerPort == gossipListen {
						ok = true
					}
				}
			}
			if !ok {
				t.Errorf("--cluster.peer=%s: port %s is not the headless Service's gossip port (%d)", p, pp, gossipListen)
			}
		}
	}
	if !found {
		t.Errorf("no --cluster.peer names the headless Service %s (got %v)", headless.Metadata.Name, peers)
	}

	// Storage: /data from the volumeClaimTemplate.
	if got := value(args, "storage.path"); strings.TrimSuffix(got, "/") != "/data" {
		t.Errorf("--storage.path=%s, want /data", got)
	}
	claims := map[string]bool{}
	for _, vct := range sts.Spec.VolumeClaimTemplates {
		claims[vct.Metadata.Name] = true
	}
	podVolumes := map[string]bool{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		podVolumes[v.Name] = true
	}
	dataMounted := false
	for _, vm := range c.VolumeMounts {
		if !claims[vm.Name] && !podVolumes[vm.Name] {
			t.Errorf("volumeMount %q (%s) matches no volumeClaimTemplate or volume", vm.Name, vm.MountPath)
		}
		if strings.TrimSuffix(vm.MountPath, "/") == strings.TrimSuffix(value(args, "storage.path"), "/") {
			dataMounted = true
			if !claims[vm.Name] {
				t.Errorf("--storage.path %s is mounted from %q, which is not a volumeClaimTemplate (the raft log must survive restarts)", vm.MountPath, vm.Name)
			}
		}
	}
	if !dataMounted {
		t.Errorf("no volumeMount at --storage.path %s", value(args, "storage.path"))
	}
	for name := range claims {
		if !slices.ContainsFunc(c.VolumeMounts, func(vm volumeMount) bool { return vm.Name == name }) {
			t.Errorf("volumeClaimTemplate %q is not mounted", name)
		}
	}

	// Probes.
	checkProbe := func(kind string, p *probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", kind, path)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s path = %q, want %q", kind, p.HTTPGet.Path, path)
		}
		if cp, ok := o.containerPort(p.HTTPGet.Port, "TCP"); !ok || cp != httpPort {
			t.Errorf("%s port %q is not the http container port", kind, p.HTTPGet.Port)
		}
	}
	checkProbe("livenessProbe", c.LivenessProbe, "/-/healthy")
	checkProbe("readinessProbe", c.ReadinessProbe, "/-/ready")
	if c.StartupProbe != nil {
		checkProbe("startupProbe", c.StartupProbe, "/-/healthy")
	}

	// Security and resources.
	podSC := sts.Spec.Template.Spec.SecurityContext
	pick := func(get func(*securityContext) any) any {
		if c.SecurityContext != nil {
			if v := get(c.SecurityContext); v != nil {
				return v
			}
		}
		if podSC != nil {
			return get(podSC)
		}
		return nil
	}
	if v, _ := pick(func(s *securityContext) any {
		if s.RunAsNonRoot == nil {
			return nil
		}
		return *s.RunAsNonRoot
	}).(bool); !v {
		t.Error("securityContext: runAsNonRoot is not true")
	}
	if v, _ := pick(func(s *securityContext) any {
		if s.RunAsUser == nil {
			return nil
		}
		return *s.RunAsUser
	}).(int64); v != 65534 {
		t.Errorf("securityContext: runAsUser = %d, want 65534", v)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("container securityContext: readOnlyRootFilesystem is not true")
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("resources.requests.%s is not set", r)
		}
	}
}

func TestServices(t *testing.T) {
	o := loadK8s(t)
	headless := o.headless(t)
	client := o.client(t)

	if headless.Spec.ClusterIP != "None" {
		t.Errorf("Service %s (the StatefulSet's serviceName) has clusterIP %q, want None", headless.Metadata.Name, headless.Spec.ClusterIP)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: publishNotReadyAddresses must be true so peers find each other before they are ready", headless.Metadata.Name)
	}
	if client.Metadata.Name != binaryName {
		t.Errorf("client Service is named %q, want %q", client.Metadata.Name, binaryName)
	}
	if client.Spec.ClusterIP == "None" {
		t.Errorf("client Service %s must not be headless", client.Metadata.Name)
	}

	for _, s := range []service{headless, client} {
		if !selects(s.Spec.Selector, o.podLabels()) {
			t.Errorf("Service %s selector %v does not select the pod labels %v", s.Metadata.Name, s.Spec.Selector, o.podLabels())
		}
		names := map[string]bool{}
		for _, p := range s.Spec.Ports {
			if p.Name == "" {
				t.Errorf("Service %s: port %d has no name", s.Metadata.Name, p.Port)
			}
			if names[p.Name] {
				t.Errorf("Service %s: port name %q used twice", s.Metadata.Name, p.Name)
			}
			names[p.Name] = true
			target := p.TargetPort
			if target == "" {
				target = intOrString(strconv.Itoa(p.Port))
			}
			if _, ok := o.containerPort(target, p.Protocol); !ok {
				t.Errorf("Service %s port %s: targetPort %q (%s) matches no container port", s.Metadata.Name, p.Name, target, orDefault(p.Protocol, "TCP"))
			}
		}
	}

	// The client Service exposes http; the headless one gossip (TCP and UDP) and raft.
	wantPorts := func(s service, want map[string]string) {
		for name, proto := range want {
			found := false
			for _, p := range s.Spec.Ports {
				if p.Name == name {
					found = true
					cp, ok := o.containerPort(targetOrPort(p.TargetPort, p.Port), p.Protocol)
					if !ok || cp.Name != name || orDefault(p.Protocol, "TCP") != proto {
						t.Errorf("Service %s port %s does not lead to container port %s/%s", s.Metadata.Name, name, name, proto)
					}
				}
			}
			if !found {
				t.Errorf("Service %s has no port named %s", s.Metadata.Name, name)
			}
		}
	}
	wantPorts(client, map[string]string{"http": "TCP"})
	wantPorts(headless, map[string]string{"gossip-tcp": "TCP", "gossip-udp": "UDP", "raft": "TCP"})
	for _, p := range client.Spec.Ports {
		if p.Name == "http" && p.Port != 9091 {
			t.Errorf("client Service port http is %d, want 9091 (the Pushgateway port)", p.Port)
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func targetOrPort(target intOrString, port int) intOrString {
	if target == "" {
		return intOrString(strconv.Itoa(port))
	}
	return target
}

func TestPodDisruptionBudget(t *testing.T) {
	o := loadK8s(t)
	pdb := o.pdb
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != "1" {
		t.Errorf("PodDisruptionBudget %s: maxUnavailable = %v, want 1", pdb.Metadata.Name, pdb.Spec.MaxUnavailable)
	}
	if pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget %s: set maxUnavailable only, not minAvailable", pdb.Metadata.Name)
	}
	if len(pdb.Spec.Selector.MatchExpressions) > 0 || !selects(pdb.Spec.Selector.MatchLabels, o.podLabels()) {
		t.Errorf("PodDisruptionBudget %s selector %v does not select the pod labels %v", pdb.Metadata.Name, pdb.Spec.Selector.MatchLabels, o.podLabels())
	}
}

func TestServiceMonitor(t *testing.T) {
	o := loadK8s(t)
	sm := o.serviceMonitor
	client := o.client(t)
	headless := o.headless(t)
	if len(sm.Spec.Selector.MatchExpressions) > 0 || !selects(sm.Spec.Selector.MatchLabels, client.Metadata.Labels) {
		t.Errorf("ServiceMonitor %s selector %v does not select the client Service %s (labels %v)", sm.Metadata.Name, sm.Spec.Selector.MatchLabels, client.Metadata.Name, client.Metadata.Labels)
	}
	if selects(sm.Spec.Selector.MatchLabels, headless.Metadata.Labels) {
		t.Errorf("ServiceMonitor %s also selects the headless Service %s", sm.Metadata.Name, headless.Metadata.Name)
	}
	if !selects(client.Spec.Selector, o.podLabels()) {
		t.Errorf("the client Service selected by the ServiceMonitor does not select the pods")
	}
	if len(sm.Spec.Endpoints) != 2 {
		t.Fatalf("ServiceMonitor %s: %d endpoints, want 2 (pushed metrics through the Service, each pod's own)", sm.Metadata.Name, len(sm.Spec.Endpoints))
	}
	// The second: every pod's own metrics, one target per pod.
	if own := sm.Spec.Endpoints[1]; own.Path != "/-/metrics" || own.Port != "http" || own.HonorLabels {
		t.Errorf("ServiceMonitor %s second endpoint = %+v, want port http, path /-/metrics, target labels kept", sm.Metadata.Name, own)
	}
	ep := sm.Spec.Endpoints[0]
	if !ep.HonorLabels {
		t.Errorf("ServiceMonitor %s: honorLabels must be true (pushed job/instance labels win)", sm.Metadata.Name)
	}
	if ep.Port != "http" {
		t.Errorf("ServiceMonitor %s endpoint port = %q, want http", sm.Metadata.Name, ep.Port)
	}
	var clientPort *servicePort
	for i, p := range client.Spec.Ports {
		if p.Name == ep.Port {
			clientPort = &client.Spec.Ports[i]
		}
	}
	if clientPort == nil {
		t.Fatalf("ServiceMonitor endpoint port %q is not a port of Service %s", ep.Port, client.Metadata.Name)
	}
	args := o.containerArgs(t)
	if ep.Path != "/metrics" || ep.Path != value(args, "web.telemetry-path") {
		t.Errorf("ServiceMonitor path = %q, want /metrics = --web.telemetry-path (%s)", ep.Path, value(args, "web.telemetry-path"))
	}

	// The relabelings must turn the per-pod targets of the Service's
	// endpoints into one target addressed at the client Service (see
	// README.md). Simulate what Prometheus does with the targets the
	// Prometheus Operator generates for three pods.
	var final []map[string]string
	for i := range 3 {
		pod := fmt.Sprintf("%s-%d", o.sts.Metadata.Name, i)
		labels := map[string]string{
			"__address__":                           fmt.Sprintf("10.1.0.%d:%d", 10+i, o.namedPort(t, "http", "TCP").ContainerPort),
			"__meta_kubernetes_namespace":           "monitoring",
			"__meta_kubernetes_service_name":        client.Metadata.Name,
			"__meta_kubernetes_pod_name":            pod,
			"__meta_kubernetes_pod_container_name":  o.container().Name,
			"__meta_kubernetes_endpoint_port_name":  ep.Port,
			"__meta_kubernetes_endpoint_ready":      "true",
			"__meta_kubernetes_pod_ip":              fmt.Sprintf("10.1.0.%d", 10+i),
			"__meta_kubernetes_endpoint_hostname":   pod,
			"__meta_kubernetes_endpoint_node_name":  fmt.Sprintf("node-%d", i),
			"__meta_kubernetes_pod_node_name":       fmt.Sprintf("node-%d", i),
			"__meta_kubernetes_endpoints_name":      client.Metadata.Name,
			"__meta_kubernetes_pod_controller_name": o.sts.Metadata.Name,
			"namespace":                             "monitoring",
			"service":                               client.Metadata.Name,
			"pod":                                   pod,
			"container":                             o.container().Name,
			"endpoint":                              ep.Port,
			"job":                                   client.Metadata.Name,
		}
		for j, rc := range ep.Relabelings {
			keep, err := relabel(labels, rc)
			if err != nil {
				t.Fatalf("ServiceMonitor relabelings[%d]: %v", j, err)
			}
			if !keep {
				t.Fatalf("ServiceMonitor relabelings[%d] drop the target of pod %s", j, pod)
			}
		}
		if _, ok := labels["instance"]; !ok {
			labels["instance"] = labels["__address__"]
		}
		for k := range labels {
			if strings.HasPrefix(k, "__") && k != "__address__" {
				delete(labels, k)
			}
		}
		final = append(final, labels)
	}
	want := fmt.Sprintf("%s.monitoring.svc:%d", client.Metadata.Name, clientPort.Port)
	if got := final[0]["__address__"]; got != want {
		t.Errorf("ServiceMonitor relabelings address the scrape at %q, want the client Service %q", got, want)
	}
	for i := 1; i < len(final); i++ {
		if fmt.Sprint(final[i]) != fmt.Sprint(final[0]) {
			t.Errorf("targets of different pods keep different labels after relabeling, so each pod is scraped:\n%v\n%v", final[0], final[i])
		}
	}

	// Metric relabelings: pushed series (which always have a job label,
	// kept by honorLabels) must survive; the node's own series (no job
	// label, so they get the target's) are dropped.
	target := final[0]
	for _, c := range []struct {
		series   map[string]string
		wantKeep bool
	}{
		{map[string]string{"__name__": "push_time_seconds", "job": "backup", "instance": "db1"}, true},
		{map[string]string{"__name__": "backup_duration_seconds", "job": "batch", "instance": ""}, true},
		{map[string]string{"__name__": "go_goroutines"}, false},
		{map[string]string{"__name__": "pushgateway_cluster_is_leader"}, false},
	} {
		series := map[string]string{}
		for k, v := range target {
			series[k] = v
		}
		for k, v := range c.series { // honorLabels: the scraped labels win
			series[k] = v
		}
		keep := true
		for j, rc := range ep.MetricRelabelings {
			k, err := relabel(series, rc)
			if err != nil {
				t.Fatalf("ServiceMonitor metricRelabelings[%d]: %v", j, err)
			}
			if !k {
				keep = false
				break
			}
		}
		if keep != c.wantKeep {
			t.Errorf("ServiceMonitor metricRelabelings: series %v kept = %v, want %v", c.series, keep, c.wantKeep)
		}
	}
}

// relabel applies one Prometheus relabel config (the actions used here);
// false means the target or series is dropped.
func relabel(labels map[string]string, rc relabelConfig) (bool, error) {
	sep, regex, repl := ";", "(.*)", "$1"
	if rc.Separator != nil {
		sep = *rc.Separator
	}
	if rc.Regex != nil {
		regex = *rc.Regex
	}
	if rc.Replacement != nil {
		repl = *rc.Replacement
	}
	re, err := regexp.Compile("^(?:" + regex + ")$")
	if err != nil {
		return false, err
	}
	vals := make([]string, len(rc.SourceLabels))
	for i, l := range rc.SourceLabels {
		vals[i] = labels[l]
	}
	src := strings.Join(vals, sep)
	switch strings.ToLower(orDefault(rc.Action, "replace")) {
	case "replace":
		m := re.FindStringSubmatchIndex(src)
		if m == nil {
			return true, nil
		}
		v := string(re.ExpandString(nil, repl, src, m))
		if v == "" {
			delete(labels, rc.TargetLabel)
		} else {
			labels[rc.TargetLabel] = v
		}
	case "keep":
		return re.MatchString(src), nil
	case "drop":
		return !re.MatchString(src), nil
	case "labeldrop":
		for k := range labels {
			if re.MatchString(k) {
				delete(labels, k)
			}
		}
	case "labelkeep":
		for k := range labels {
			if !re.MatchString(k) {
				delete(labels, k)
			}
		}
	default:
		return false, fmt.Errorf("action %q not simulated by this test", rc.Action)
	}
	return true, nil
}

// TestKubectl runs kubectl when it is installed: kustomize (offline) and a
// client-side dry-run apply (needs an API server; skipped without one).
func TestKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	o := loadK8s(t)

	t.Run("kustomize", func(t *testing.T) {
		out, err := exec.Command(kubectl, "kustomize", k8sDir).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", k8sDir, err, stderrOf(err))
		}
		docs, err := decodeAll(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("kubectl kustomize output: %v", err)
		}
		var got, want []string
		for _, d := range docs {
			raw, _ := yaml.Marshal(d)
			var head struct {
				Kind     string     `yaml:"kind"`
				Metadata objectMeta `yaml:"metadata"`
			}
			if err := yaml.Unmarshal(raw, &head); err != nil {
				t.Fatal(err)
			}
			got = append(got, head.Kind+"/"+head.Metadata.Name)
		}
		for _, m := range o.all {
			want = append(want, m.kind+"/"+m.name)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("kubectl kustomize %s yields %v, want %v", k8sDir, got, want)
		}
	})

	t.Run("dry-run", func(t *testing.T) {
		files := map[string]bool{}
		for _, m := range o.all {
			files[m.file] = true
		}
		for file := range files {
			out, err := exec.Command(kubectl, "apply", "--dry-run=client", "-f", file).CombinedOutput()
			if err == nil {
				continue
			}
			s := string(out)
			switch {
			case strings.Contains(s, "connection refused"), strings.Contains(s, "couldn't get current server API group list"),
				strings.Contains(s, "failed to download openapi"), strings.Contains(s, "no such host"),
				strings.Contains(s, "i/o timeout"), strings.Contains(s, "Unauthorized"), strings.Contains(s, "forbidden"):
				t.Skipf("no usable Kubernetes API server for kubectl apply --dry-run=client: %s", firstLine(s))
			case strings.Contains(s, `no matches for kind "ServiceMonitor"`), strings.Contains(s, "ensure CRDs are installed first"):
				t.Logf("%s: ServiceMonitor CRD not installed on the API server; not checked", file)
			default:
				t.Errorf("kubectl apply --dry-run=client -f %s: %v\n%s", file, err, s)
			}
		}
	})
}

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ---------------------------------------------------------------------------
// systemd

// unit is a parsed systemd unit: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	lineNo := 0
	var pending string
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section header %q", path, lineNo, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a key=value line in a section: %q", path, lineNo, line)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		u[section][key] = append(u[section][key], val)
	}
	if pending != "" {
		t.Fatalf("%s: ends in a continuation line", path)
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// systemdSeconds parses a time span such as "60", "60s" or "1min".
func systemdSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	r := strings.NewReplacer("min", "m", "sec", "s", " ", "")
	d, err := time.ParseDuration(r.Replace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a time span", s)
	}
	return d, nil
}

func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// parseEnvFile reads KEY=value lines the way systemd's EnvironmentFile= does
// for the forms used here: comments, double quotes, backslash-newline.
func parseEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	text := string(data)
	for len(text) > 0 {
		line, rest, _ := strings.Cut(text, "\n")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
			text = rest
			continue
		}
		key, val, ok := strings.Cut(trimmed, "=")
		if !ok {
			t.Fatalf("%s: not KEY=value: %q", path, trimmed)
		}
		key = strings.TrimSpace(key)
		if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(key) {
			t.Fatalf("%s: bad variable name %q", path, key)
		}
		// Re-join the value with the rest of the file for quoted or
		// continued values.
		val = strings.TrimLeft(val, " \t")
		full := val + "\n" + rest
		var b strings.Builder
		i := 0
		if strings.HasPrefix(full, `"`) {
			i = 1
			for ; ; i++ {
				if i >= len(full) {
					t.Fatalf("%s: unterminated quote in %s", path, key)
				}
				c := full[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(full) {
					switch n := full[i+1]; n {
					case '\n':
						i++
						continue
					case '"', '\\', '$', '`':
						b.WriteByte(n)
						i++
						continue
					}
				}
				b.WriteByte(c)
			}
			// nothing but blanks may follow the closing quote
			after, next, _ := strings.Cut(full[i:], "\n")
			if strings.TrimSpace(after) != "" {
				t.Fatalf("%s: text after the closing quote of %s: %q", path, key, after)
			}
			text = next
		} else {
			for ; i < len(full); i++ {
				c := full[i]
				if c == '\n' {
					i++
					break
				}
				if c == '\\' && i+1 < len(full) {
					if full[i+1] != '\n' {
						b.WriteByte(full[i+1])
					}
					i++
					continue
				}
				b.WriteByte(c)
			}
			text = full[min(i, len(full)):]
		}
		env[key] = strings.TrimSpace(b.String())
	}
	return env
}

// expandExecStart splits ExecStart into words, replacing $VAR (split on
// whitespace, as systemd does) and ${VAR} (one word) from env.
func expandExecStart(t *testing.T, cmdline string, env map[string]string) []string {
	t.Helper()
	var words []string
	for _, w := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
			words = append(words, env[w[2:len(w)-1]])
		case strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "$$"):
			words = append(words, strings.Fields(env[w[1:]])...)
		default:
			if strings.ContainsAny(w, `"'`) {
				t.Errorf("ExecStart word %q: quoting is not handled by this test; avoid it", w)
			}
			words = append(words, w)
		}
	}
	return words
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitFile)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Errorf("%s: no [%s] section", unitFile, s)
		}
	}
	want := map[string]string{
		"User":            "pushgateway",
		"Group":           "pushgateway",
		"StateDirectory":  binaryName,
		"Restart":         "on-failure",
		"KillSignal":      "SIGTERM",
		"EnvironmentFile": "-/etc/default/" + binaryName,
		"ProtectSystem":   "strict",
	}
	for k, v := range want {
		if got := u.get("Service", k); got != v {
			t.Errorf("%s: %s=%q, want %q", unitFile, k, got, v)
		}
	}
	for _, k := range []string{"NoNewPrivileges", "ProtectHome"} {
		if !isTrue(u.get("Service", k)) {
			t.Errorf("%s: %s=%q, want yes", unitFile, k, u.get("Service", k))
		}
	}
	if d, err := systemdSeconds(u.get("Service", "TimeoutStopSec")); err != nil {
		t.Errorf("%s: TimeoutStopSec: %v", unitFile, err)
	} else if d < 30*time.Second {
		t.Errorf("%s: TimeoutStopSec=%s, want at least 30s for a leadership transfer", unitFile, d)
	}
	if got := u.get("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("%s: WantedBy=%q, want multi-user.target", unitFile, got)
	}

	execStart := u["Service"]["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", unitFile, len(execStart))
	}
	if !strings.Contains(execStart[0], "$ARGS") {
		t.Errorf("%s: ExecStart does not pass $ARGS from the EnvironmentFile: %q", unitFile, execStart[0])
	}
	words := expandExecStart(t, strings.TrimLeft(execStart[0], "-@:+!"), nil)
	if len(words) == 0 || !filepath.IsAbs(words[0]) || filepath.Base(words[0]) != binaryName {
		t.Fatalf("%s: ExecStart does not run an absolute path to %s: %q", unitFile, binaryName, execStart[0])
	}
	if words[0] != "/usr/local/bin/"+binaryName {
		t.Errorf("%s: ExecStart runs %s, want /usr/local/bin/%s (as README.md installs it)", unitFile, words[0], binaryName)
	}
	args := parseArgs(t, unitFile+" ExecStart", words[1:])
	checkFlags(t, unitFile+" ExecStart", args)
	stateDir := "/var/lib/" + u.get("Service", "StateDirectory")
	if got := values(args, "storage.path"); len(got) != 1 || strings.TrimSuffix(got[0], "/") != stateDir {
		t.Errorf("%s: ExecStart --storage.path=%v, want exactly one --storage.path=%s (the StateDirectory)", unitFile, got, stateDir)
	}
	if wd := u.get("Service", "WorkingDirectory"); wd != "" && wd != stateDir {
		t.Errorf("%s: WorkingDirectory=%s is not the state directory %s", unitFile, wd, stateDir)
	}
}

func TestSystemdEnvironmentFile(t *testing.T) {
	u := parseUnit(t, unitFile)
	env := parseEnvFile(t, envFile)
	if _, ok := env["ARGS"]; !ok {
		t.Fatalf("%s: no ARGS", envFile)
	}
	for k := range env {
		if k != "ARGS" {
			t.Errorf("%s: %s is set but the unit only uses $ARGS", envFile, k)
		}
	}
	// The complete command line, as systemd would run it.
	words := expandExecStart(t, strings.TrimLeft(u["Service"]["ExecStart"][0], "-@:+!"), env)
	args := parseArgs(t, "ExecStart with "+envFile, words[1:])
	checkFlags(t, "ExecStart with "+envFile, args)
	if got := values(args, "storage.path"); len(got) != 1 {
		t.Errorf("%s: --storage.path is set by the unit; ARGS must not set it again (got %v)", envFile, got)
	}

	if got := value(args, "cluster.node-name"); got != "pg1" {
		t.Errorf("%s: --cluster.node-name=%q, want pg1 (the example is pg1's file)", envFile, got)
	}
	peers := values(args, "cluster.peer")
	expect, _ := strconv.Atoi(value(args, "cluster.bootstrap-expect"))
	if expect != 3 || len(peers) != 3 {
		t.Errorf("%s: --cluster.bootstrap-expect=%d with %d peers, want 3 and 3", envFile, expect, len(peers))
	}
	gossipPort := port(t, "--cluster.listen-address", value(args, "cluster.listen-address"))
	raftPort := port(t, "--raft.listen-address", value(args, "raft.listen-address"))
	self := map[string]bool{}
	for _, p := range peers {
		host, _, _ := net.SplitHostPort(p)
		if port(t, "--cluster.peer", p) != gossipPort {
			t.Errorf("%s: --cluster.peer=%s: not the gossip port %d", envFile, p, gossipPort)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsPrivate() {
			t.Errorf("%s: --cluster.peer=%s: want a private documentation address", envFile, p)
		}
		self[host] = true
	}
	for _, f := range []struct {
		name string
		port int
	}{{"cluster.advertise-address", gossipPort}, {"raft.advertise-address", raftPort}} {
		v := value(args, f.name)
		host, _, err := net.SplitHostPort(v)
		if err != nil {
			t.Errorf("%s: --%s=%q: %v", envFile, f.name, v, err)
			continue
		}
		if port(t, "--"+f.name, v) != f.port {
			t.Errorf("%s: --%s=%s: port differs from the listen port %d", envFile, f.name, v, f.port)
		}
		if host != "10.0.0.11" || !self[host] {
			t.Errorf("%s: --%s=%s: want pg1's address 10.0.0.11, one of the peers", envFile, f.name, v)
		}
	}

	// A shell that sources the file (as init scripts do) must see the same.
	if sh, err := exec.LookPath("sh"); err == nil {
		out, err := exec.Command(sh, "-c", `. "$1" && printf '%s\n' "$ARGS"`, "sh", envFile).Output()
		if err != nil {
			t.Fatalf("sh sourcing %s: %v\n%s", envFile, err, stderrOf(err))
		}
		if got := strings.Join(strings.Fields(string(out)), " "); got != strings.Join(strings.Fields(env["ARGS"]), " ") {
			t.Errorf("%s: sh reads ARGS as\n%q\nthis test as\n%q", envFile, got, env["ARGS"])
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	content := "# comment\n\nA=plain value\nB=\"quoted \\\n  continued\" \nC=x\\\ny\n; other comment\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got := parseEnvFile(t, path)
	want := map[string]string{"A": "plain value", "B": "quoted   continued", "C": "xy"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseEnvFile = %q, want %q", got, want)
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify when it is installed,
// on a copy of the unit whose ExecStart points at the freshly built binary.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, filepath.Base(unitFile))
	patched := strings.ReplaceAll(string(data), "/usr/local/bin/"+binaryName, binaryPath)
	if err := os.WriteFile(copyPath, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", copyPath).CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Base(unitFile)) {
			problems = append(problems, line)
		}
	}
	if len(problems) > 0 {
		t.Errorf("systemd-analyze verify %s:\n%s", unitFile, strings.Join(problems, "\n"))
	}
	if err != nil && len(problems) == 0 {
		t.Skipf("systemd-analyze verify failed for reasons unrelated to the unit (%v): %s", err, firstLine(string(out)))
	}
	if len(out) > 0 {
		t.Logf("systemd-analyze verify output:\n%s", out)
	}
}
