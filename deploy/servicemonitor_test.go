package deploy

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The ServiceMonitor, and a re-implementation of Prometheus' relabelling
// for the few actions it uses, to simulate the targets it produces.

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
