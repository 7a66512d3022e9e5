// Command kubecheck validates Kubernetes manifests offline, the part of `kubectl apply
// --dry-run=server` that needs no cluster:
//
//   - every document of a built kind decodes strictly into its Go type from k8s.io/api:
//     an unknown or duplicated field, a wrong type or an unparsable quantity fails;
//   - custom resources (KEDA ScaledObject, ...) must match the openAPIV3Schema of their
//     CustomResourceDefinition, given with -crd, including unknown-field checks the API
//     server applies with fieldValidation=Strict;
//   - a handful of the API server's semantic rules: names, label keys and values, env
//     var names, port names, selectors that match their pod template, probes and
//     mounts that refer to ports and volumes that exist.
//
// It exists because kubeconform needs its JSON schemas from the network. It lives in its
// own module so that the service's go.mod does not carry the Kubernetes libraries.
//
//	kubecheck [-crd CRD.yaml]... FILE.yaml|-...
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

type crdList []string

func (c *crdList) String() string     { return strings.Join(*c, ",") }
func (c *crdList) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	var crds crdList
	flag.Var(&crds, "crd", "CustomResourceDefinition file whose schemas validate custom resources (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: kubecheck [-crd CRD.yaml]... FILE.yaml|-...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	c, err := newChecker(crds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
		os.Exit(2)
	}
	failed := false
	for _, name := range flag.Args() {
		n, errs := c.checkFile(name)
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, e)
		}
		if len(errs) > 0 {
			failed = true
			continue
		}
		fmt.Printf("%s: %d documents valid\n", name, n)
	}
	if failed {
		os.Exit(1)
	}
}

type checker struct {
	scheme  *runtime.Scheme
	decoder runtime.Decoder
	crds    map[schema.GroupVersionKind]*crdSchema
}

func newChecker(crdFiles []string) (*checker, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, batchv1.AddToScheme,
		networkingv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	c := &checker{
		scheme: s,
		// Strict: unknown and duplicate fields are errors, not warnings.
		decoder: serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer(),
		crds:    map[schema.GroupVersionKind]*crdSchema{},
	}
	for _, f := range crdFiles {
		if err := c.loadCRDs(f); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *checker) checkFile(name string) (int, []error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return 0, []error{err}
		}
		defer f.Close()
		r = f
	}
	docs, err := splitYAML(r)
	if err != nil {
		return 0, []error{err}
	}
	var errs []error
	seen := map[string]bool{}
	n := 0
	for i, doc := range docs {
		var tm metav1.TypeMeta
		var om struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i+1, err))
			continue
		}
		if err := yaml.Unmarshal(doc, &om); err != nil {
			errs = append(errs, fmt.Errorf("document %d: metadata: %w", i+1, err))
			continue
		}
		id := fmt.Sprintf("%s %s/%s", tm.Kind, om.Metadata.Namespace, om.Metadata.Name)
		if tm.APIVersion == "" || tm.Kind == "" || om.Metadata.Name == "" {
			errs = append(errs, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", i+1))
			continue
		}
		if seen[tm.APIVersion+" "+id] {
			errs = append(errs, fmt.Errorf("%s: defined twice", id))
		}
		seen[tm.APIVersion+" "+id] = true
		for _, e := range checkMeta(&om.Metadata) {
			errs = append(errs, fmt.Errorf("%s: %s", id, e))
		}
		gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
		switch {
		case c.scheme.Recognizes(gvk):
			obj, _, err := c.decoder.Decode(doc, nil, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				continue
			}
			for _, e := range semantic(obj) {
				errs = append(errs, fmt.Errorf("%s: %s", id, e))
			}
		case c.crds[gvk] != nil:
			var obj map[string]any
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				continue
			}
			for _, e := range c.crds[gvk].validate(obj) {
				errs = append(errs, fmt.Errorf("%s: %s", id, e))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: no schema for %s (add its CRD with -crd)", id, gvk))
		}
		n++
	}
	return n, errs
}

func splitYAML(r io.Reader) ([][]byte, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		docs = append(docs, doc)
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func checkMeta(m *metav1.ObjectMeta) []string {
	var out []string
	for _, e := range validation.IsDNS1123Subdomain(m.Name) {
		out = append(out, "metadata.name: "+e)
	}
	if m.Namespace != "" {
		for _, e := range validation.IsDNS1123Label(m.Namespace) {
			out = append(out, "metadata.namespace: "+e)
		}
	}
	out = append(out, checkLabels("metadata.labels", m.Labels)...)
	for k := range m.Annotations {
		for _, e := range validation.IsQualifiedName(k) {
			out = append(out, fmt.Sprintf("metadata.annotations[%s]: %s", k, e))
		}
	}
	return out
}

func checkLabels(path string, labels map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(labels) {
		for _, e := range validation.IsQualifiedName(k) {
			out = append(out, fmt.Sprintf("%s key %q: %s", path, k, e))
		}
		for _, e := range validation.IsValidLabelValue(labels[k]) {
			out = append(out, fmt.Sprintf("%s[%s] value %q: %s", path, k, labels[k], e))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
