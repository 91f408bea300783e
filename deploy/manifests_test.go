package deploy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	yaml "go.yaml.in/yaml/v2"
)

// The Kubernetes objects as the tests read them: only the fields they look at,
// decoded from the YAML manifests.

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
