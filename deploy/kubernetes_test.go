package deploy

import (
	"bytes"
	"errors"
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

	yaml "go.yaml.in/yaml/v2"
)

// Kubernetes manifests (deploy/kubernetes): parsed into the few fields the
// tests look at, and checked against each other and the binary.

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
