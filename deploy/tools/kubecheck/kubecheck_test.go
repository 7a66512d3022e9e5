package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: web:1.0.0
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /health/ready, port: http}
          resources:
            requests: {cpu: 100m, memory: 64Mi, nvidia.com/gpu: 1}
            limits: {cpu: "1", memory: 128Mi, nvidia.com/gpu: 1}
          volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
`

const goodScaledObject = `
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: web
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 1
  triggers:
    - type: nats-jetstream
      metadata: {stream: REQUESTS, consumer: preprocess-premium, lagThreshold: "10"}
`

func TestCheckFile(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // substring of the first error; empty means valid
	}{
		{"a correct deployment and scaled object are valid", goodDeployment + "---" + goodScaledObject, ""},
		{"a misspelled field is rejected", strings.Replace(goodDeployment, "selector:", "replica: 2\n  selector:", 1), `unknown field "spec.replica"`},
		{"a field of the wrong type is rejected", strings.Replace(goodDeployment, "containerPort: 8080", "containerPort: http", 1), "containerPort"},
		{"an unparsable quantity is rejected", strings.Replace(goodDeployment, "memory: 128Mi", "memory: 128MB!", 1), "quantities must match"},
		{"a probe on a port the container does not name is rejected", strings.Replace(goodDeployment, "port: http}", "port: metrics}", 1), `port "metrics" is not a named port`},
		{"a selector that misses the pod labels is rejected", strings.Replace(goodDeployment, "matchLabels: {app: web}", "matchLabels: {app: api}", 1), "does not match"},
		{"a GPU request below its limit is rejected", strings.Replace(goodDeployment, "nvidia.com/gpu: 1}\n          volumeMounts", "nvidia.com/gpu: 2}\n          volumeMounts", 1), "must be equal"},
		{"a mount of a missing volume is rejected", strings.Replace(goodDeployment, "{name: tmp, mountPath", "{name: cache, mountPath", 1), "no volume of that name"},
		{"a misspelled custom resource field is rejected", strings.Replace(goodScaledObject, "minReplicaCount", "minReplicas", 1), "spec.minReplicas: unknown field"},
		{"a custom resource missing a required field is rejected", strings.Replace(goodScaledObject, "  scaleTargetRef: {name: web}\n", "", 1), "scaleTargetRef"},
		{"a custom resource field of the wrong type is rejected", strings.Replace(goodScaledObject, "minReplicaCount: 1", "minReplicaCount: one", 1), "minReplicaCount"},
		{"a kind without a schema is rejected", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n", "no schema"},
		{"a document without a name is rejected", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name are required"},
		{"an invalid name is rejected", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n", "metadata.name"},
	}
	c, err := newChecker([]string{filepath.Join("testdata", "scaledobject-crd.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(f, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errs := c.checkFile(f)
			if tt.want == "" {
				for _, e := range errs {
					t.Errorf("unexpected error: %v", e)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), tt.want) {
					return
				}
			}
			t.Errorf("errors %q do not mention %q", errs, tt.want)
		})
	}
}
