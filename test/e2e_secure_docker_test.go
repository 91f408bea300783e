package test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The secure compose variant runs as its own project on its own ports. It
// shares docker-compose.yml's fixed cluster subnet with TestE2EComposeCluster,
// so the two must not run at the same time (neither uses t.Parallel).
const secureProject = "pgcsec"

var securePorts = []int{19391, 19392, 19393}

// TestE2ESecureComposeCluster runs the compose cluster with
// docker-compose.secure.yml: HTTPS and basic auth on the API, encrypted
// gossip, mutual TLS between the nodes, the healthcheck through all of it,
// and two strangers on the cluster network (wrong gossip key; certificates
// of another CA) that get nowhere.
func TestE2ESecureComposeCluster(t *testing.T) {
	requireDockerImage(t, "secure compose end-to-end test")
	// The image runs as uid 65534: the mounted files must be readable by it.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sf := writeSecureFiles(t, dir, 0o644)

	c := newCompose(t, secureProject, []string{"docker-compose.yml", "docker-compose.secure.yml"}, securePorts, "PGC_CERTS_DIR="+dir)
	strangers := []string{secureProject + "-wrong-key", secureProject + "-rogue-ca"}
	removeStrangers := func() {
		for _, name := range strangers {
			_ = exec.Command("docker", "rm", "-f", "-v", name).Run()
		}
	}
	removeStrangers()
	c.downNowAndAtEnd()
	start := time.Now()
	c.run("up", "-d")

	urls := make([]string, len(securePorts))
	for i, p := range securePorts {
		urls[i] = "https://127.0.0.1:" + strconv.Itoa(p)
	}
	took := eventually(t, "three secure containers ready", 90*time.Second, func() bool {
		for _, u := range urls {
			if code, _, err := sf.do("GET", u+"/-/ready", "", true); err != nil || code != 200 {
				return false
			}
		}
		return true
	})
	t.Logf("secure compose cluster ready after %v", took.Round(time.Millisecond))

	for i, u := range urls {
		if code, _, err := sf.do("PUT", u+"/metrics/job/anon", "anon 1\n", false); err != nil || code != 401 {
			t.Fatalf("push without credentials to node%d: %d %v", i+1, code, err)
		}
		if code, body, err := sf.do("PUT", u+fmt.Sprintf("/metrics/job/e2e-secure/instance/node%d", i+1), fmt.Sprintf("e2e_secure %d\n", i+1), true); err != nil || code != 200 {
			t.Fatalf("authenticated push to node%d: %d %v %s", i+1, code, err, body)
		}
	}
	state := func() string {
		var want string
		eventually(t, "identical state on the secure containers", 30*time.Second, func() bool {
			_, want, _ = sf.do("GET", urls[0]+"/api/v1/metrics", "", true)
			for _, u := range urls[1:] {
				if _, got, _ := sf.do("GET", u+"/api/v1/metrics", "", true); got != want {
					return false
				}
			}
			for i := range urls {
				if !strings.Contains(want, fmt.Sprintf(`"instance":"node%d"`, i+1)) {
					return false
				}
			}
			return true
		})
		return want
	}
	before := state()

	// The healthcheck gets through HTTPS and basic auth (healthcheck.yml).
	eventually(t, "containers healthy", 60*time.Second, func() bool {
		for i := range urls {
			id := strings.TrimSpace(c.run("ps", "-q", fmt.Sprintf("node%d", i+1)))
			out, err := exec.Command("docker", "inspect", "-f", "{{.State.Health.Status}}", id).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "healthy" {
				return false
			}
		}
		return true
	})

	// Two strangers on the cluster network.
	t.Cleanup(removeStrangers)
	network := secureProject + "_cluster"
	stranger := func(name, tlsFile, keyFile string) {
		out, err := exec.Command("docker", "run", "-d", "--name", name, "--network", network,
			"-v", dir+":/certs:ro", "pushgateway-cluster:latest",
			"--cluster.node-name="+name, "--cluster.peer=10.213.77.11:9094", "--cluster.peer=10.213.77.12:9094",
			"--cluster.tls-config-file=/certs/"+tlsFile, "--cluster.gossip-key-file=/certs/"+keyFile,
			"--web.config.file=/certs/web-config.yml").CombinedOutput()
		if err != nil {
			t.Fatalf("docker run %s: %v\n%s", name, err, out)
		}
	}
	stranger(strangers[0], "cluster-tls.yml", "other-gossip.key")
	stranger(strangers[1], "rogue-tls.yml", "gossip.key")
	logsOf := func(name string) string {
		out, _ := exec.Command("docker", "logs", name).CombinedOutput()
		return string(out)
	}
	eventually(t, "the wrong-key container says why it cannot join", 30*time.Second, func() bool {
		return strings.Contains(logsOf(strangers[0]), "check --cluster.gossip-key-file")
	})
	eventually(t, "the rogue-CA container and the leader refuse each other", 30*time.Second, func() bool {
		return strings.Contains(logsOf(strangers[1]), "TLS handshake failed")
	})
	_, view, _ := sf.do("GET", urls[0]+"/api/v1/cluster", "", true)
	if strings.Contains(view, strangers[0]) {
		t.Fatalf("the wrong-key container became a member: %s", view)
	}
	if n := strings.Count(view, `"suffrage":"voter"`); n != 3 {
		t.Fatalf("want three voters, got %d: %s", n, view)
	}
	if after := state(); after != before {
		t.Fatalf("state changed by the strangers:\n%s\nvs\n%s", after, before)
	}
	t.Logf("secure compose test body took %v", time.Since(start).Round(time.Millisecond))
}
