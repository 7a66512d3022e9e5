package main

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// semantic applies the API server's validation rules that a typed decode does not: the
// ones a wrong manifest most often trips at `kubectl apply` time.
func semantic(obj runtime.Object) []string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return workload(o.Spec.Selector, &o.Spec.Template)
	case *appsv1.StatefulSet:
		var claims []string
		for _, t := range o.Spec.VolumeClaimTemplates {
			claims = append(claims, t.Name)
		}
		out := workload(o.Spec.Selector, &o.Spec.Template, claims...)
		if o.Spec.ServiceName == "" {
			out = append(out, "spec.serviceName: required for stable pod DNS names")
		}
		for i, t := range o.Spec.VolumeClaimTemplates {
			if t.Spec.Resources.Requests.Storage().IsZero() {
				out = append(out, fmt.Sprintf("spec.volumeClaimTemplates[%d]: no storage request", i))
			}
		}
		return out
	case *appsv1.DaemonSet:
		return workload(o.Spec.Selector, &o.Spec.Template)
	case *batchv1.Job:
		return podSpec("spec.template.spec", &o.Spec.Template.Spec)
	case *corev1.Service:
		return service(o)
	case *policyv1.PodDisruptionBudget:
		var out []string
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			out = append(out, "spec: set exactly one of minAvailable and maxUnavailable")
		}
		if o.Spec.Selector == nil || (len(o.Spec.Selector.MatchLabels) == 0 && len(o.Spec.Selector.MatchExpressions) == 0) {
			out = append(out, "spec.selector: an empty selector covers every pod of the namespace")
		}
		return out
	case *autoscalingv2.HorizontalPodAutoscaler:
		var out []string
		if o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas {
			out = append(out, "spec.minReplicas exceeds spec.maxReplicas")
		}
		if o.Spec.ScaleTargetRef.Name == "" || o.Spec.ScaleTargetRef.Kind == "" {
			out = append(out, "spec.scaleTargetRef: kind and name are required")
		}
		if len(o.Spec.Metrics) == 0 {
			out = append(out, "spec.metrics: no metric to scale on")
		}
		return out
	case *networkingv1.NetworkPolicy:
		var out []string
		for i, r := range o.Spec.Ingress {
			out = append(out, policyPorts(fmt.Sprintf("spec.ingress[%d]", i), r.Ports)...)
		}
		for i, r := range o.Spec.Egress {
			out = append(out, policyPorts(fmt.Sprintf("spec.egress[%d]", i), r.Ports)...)
		}
		if len(o.Spec.PolicyTypes) == 0 {
			out = append(out, "spec.policyTypes: say Ingress and/or Egress explicitly")
		}
		return out
	}
	return nil
}

// workload checks a pod template and its selector; claims are the StatefulSet's volume
// claim templates, which pods mount like volumes.
func workload(sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, claims ...string) []string {
	var out []string
	out = append(out, checkLabels("spec.template.metadata.labels", t.Labels)...)
	if sel == nil {
		return append(out, "spec.selector: required")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(out, "spec.selector: "+err.Error())
	}
	if s.Empty() {
		out = append(out, "spec.selector: empty")
	}
	if !s.Matches(labels.Set(t.Labels)) {
		out = append(out, "spec.selector does not match spec.template.metadata.labels")
	}
	return append(out, podSpec("spec.template.spec", &t.Spec, claims...)...)
}

func podSpec(path string, p *corev1.PodSpec, claims ...string) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, path+"."+fmt.Sprintf(format, args...)) }
	volumes := map[string]bool{}
	for _, c := range claims {
		volumes[c] = true
	}
	for _, v := range p.Volumes {
		if volumes[v.Name] {
			bad("volumes: %q defined twice", v.Name)
		}
		volumes[v.Name] = true
	}
	if len(p.Containers) == 0 {
		bad("containers: none")
	}
	names := map[string]bool{}
	all := append(append([]corev1.Container{}, p.InitContainers...), p.Containers...)
	for i, c := range all {
		kind := "containers"
		if i < len(p.InitContainers) {
			kind = "initContainers"
		}
		cp := fmt.Sprintf("%s[%s]", kind, c.Name)
		for _, e := range validation.IsDNS1123Label(c.Name) {
			bad("%s.name: %s", cp, e)
		}
		if names[c.Name] {
			bad("%s: container name used twice", cp)
		}
		names[c.Name] = true
		if c.Image == "" {
			bad("%s.image: required", cp)
		}
		ports := map[string]bool{}
		for _, port := range c.Ports {
			if port.Name != "" {
				for _, e := range validation.IsValidPortName(port.Name) {
					bad("%s.ports[%s]: %s", cp, port.Name, e)
				}
				if ports[port.Name] {
					bad("%s.ports[%s]: name used twice", cp, port.Name)
				}
				ports[port.Name] = true
			}
			if port.ContainerPort < 1 || port.ContainerPort > 65535 {
				bad("%s.ports: containerPort %d out of range", cp, port.ContainerPort)
			}
		}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				bad("%s.env[%s]: %s", cp, e.Name, msg)
			}
			if e.Value != "" && e.ValueFrom != nil {
				bad("%s.env[%s]: value and valueFrom are exclusive", cp, e.Name)
			}
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				bad("%s.volumeMounts[%s]: no volume of that name", cp, m.Name)
			}
		}
		for probeName, pr := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if pr == nil {
				continue
			}
			if pr.HTTPGet != nil && pr.HTTPGet.Port.Type == intstr.String && !ports[pr.HTTPGet.Port.StrVal] {
				bad("%s.%s: port %q is not a named port of the container", cp, probeName, pr.HTTPGet.Port.StrVal)
			}
			if pr.TCPSocket != nil && pr.TCPSocket.Port.Type == intstr.String && !ports[pr.TCPSocket.Port.StrVal] {
				bad("%s.%s: port %q is not a named port of the container", cp, probeName, pr.TCPSocket.Port.StrVal)
			}
		}
		for res, req := range c.Resources.Requests {
			lim, ok := c.Resources.Limits[res]
			if ok && req.Cmp(lim) > 0 {
				bad("%s.resources: %s request %s exceeds its limit %s", cp, res, req.String(), lim.String())
			}
			// Extended resources (nvidia.com/gpu) cannot be overcommitted.
			if ok && !isNativeResource(res) && req.Cmp(lim) != 0 {
				bad("%s.resources: %s request and limit must be equal", cp, res)
			}
		}
	}
	for i, t := range p.Tolerations {
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			bad("tolerations[%d]: operator Exists takes no value", i)
		}
	}
	out = append(out, checkLabels(path+".nodeSelector", p.NodeSelector)...)
	return out
}

func isNativeResource(r corev1.ResourceName) bool {
	switch r {
	case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage, corev1.ResourceStorage:
		return true
	}
	return false
}

func service(s *corev1.Service) []string {
	var out []string
	out = append(out, checkLabels("spec.selector", s.Spec.Selector)...)
	if len(s.Spec.Ports) == 0 {
		out = append(out, "spec.ports: none")
	}
	names := map[string]bool{}
	for _, p := range s.Spec.Ports {
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			out = append(out, fmt.Sprintf("spec.ports[%d]: a name is required when there are several ports", p.Port))
		}
		if p.Name != "" {
			for _, e := range validation.IsDNS1123Label(p.Name) {
				out = append(out, fmt.Sprintf("spec.ports[%s].name: %s", p.Name, e))
			}
			if names[p.Name] {
				out = append(out, fmt.Sprintf("spec.ports[%s]: name used twice", p.Name))
			}
			names[p.Name] = true
		}
		if p.TargetPort.Type == intstr.String {
			for _, e := range validation.IsValidPortName(p.TargetPort.StrVal) {
				out = append(out, fmt.Sprintf("spec.ports[%s].targetPort: %s", p.Name, e))
			}
		}
	}
	return out
}

func policyPorts(path string, ports []networkingv1.NetworkPolicyPort) []string {
	var out []string
	for i, p := range ports {
		if p.Port != nil && p.Port.Type == intstr.Int && (p.Port.IntVal < 1 || p.Port.IntVal > 65535) {
			out = append(out, fmt.Sprintf("%s.ports[%d]: port %d out of range", path, i, p.Port.IntVal))
		}
	}
	return out
}
