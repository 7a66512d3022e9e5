package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

// crdSchema validates custom resources of one group/version/kind.
type crdSchema struct {
	schema    *spec.Schema
	validator *validate.SchemaValidator
}

type crdDoc struct {
	Kind string `json:"kind"`
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Served bool   `json:"served"`
			Schema struct {
				OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func (c *checker) loadCRDs(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	docs, err := splitYAML(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, doc := range docs {
		var d crdDoc
		if err := yaml.Unmarshal(doc, &d); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if d.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range d.Spec.Versions {
			if !v.Served || len(v.Schema.OpenAPIV3Schema) == 0 {
				continue
			}
			s := new(spec.Schema)
			if err := json.Unmarshal(v.Schema.OpenAPIV3Schema, s); err != nil {
				return fmt.Errorf("%s: %s/%s schema: %w", file, d.Spec.Group, v.Name, err)
			}
			gvk := schema.GroupVersionKind{Group: d.Spec.Group, Version: v.Name, Kind: d.Spec.Names.Kind}
			c.crds[gvk] = &crdSchema{schema: s, validator: validate.NewSchemaValidator(s, nil, "", strfmt.Default)}
		}
	}
	return nil
}

func (s *crdSchema) validate(obj map[string]any) []string {
	var out []string
	if res := s.validator.Validate(obj); res != nil {
		for _, e := range res.Errors {
			out = append(out, e.Error())
		}
	}
	out = append(out, unknownFields("", s.schema, obj)...)
	sort.Strings(out)
	return out
}

// unknownFields reports fields the schema does not declare, as the API server does with
// fieldValidation=Strict (by default it prunes them silently, which hides typos such as
// "minReplicas" for "minReplicaCount").
func unknownFields(path string, s *spec.Schema, v any) []string {
	if s == nil {
		return nil
	}
	if keep, _ := s.Extensions.GetBool("x-kubernetes-preserve-unknown-fields"); keep {
		return nil
	}
	var out []string
	switch val := v.(type) {
	case map[string]any:
		if path == ".metadata" {
			return nil // ObjectMeta, checked separately
		}
		for _, k := range sortedKeys(val) {
			child := path + "." + k
			if ps, ok := s.Properties[k]; ok {
				out = append(out, unknownFields(child, &ps, val[k])...)
				continue
			}
			if s.AdditionalProperties != nil {
				if s.AdditionalProperties.Schema != nil {
					out = append(out, unknownFields(child, s.AdditionalProperties.Schema, val[k])...)
				}
				continue
			}
			if len(s.Properties) > 0 {
				out = append(out, fmt.Sprintf("%s: unknown field (known: %s)", strings.TrimPrefix(child, "."), strings.Join(sortedKeys(s.Properties), ", ")))
			}
		}
	case []any:
		if s.Items != nil && s.Items.Schema != nil {
			for i, item := range val {
				out = append(out, unknownFields(fmt.Sprintf("%s[%d]", path, i), s.Items.Schema, item)...)
			}
		}
	}
	return out
}
