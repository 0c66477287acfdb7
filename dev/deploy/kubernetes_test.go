package deploy_test

import (
	"errors"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	k8sDir        = examples + "kubernetes/"
	containerName = "srht-registry"
	imageUser     = 65532 // the image's user and group
)

// unmarshalStrict decodes YAML into v the way the API server does with
// strict field validation: an unknown field, a duplicate key or a value of
// the wrong type is an error, and field names match case-sensitively.
// (sigs.k8s.io/yaml's own UnmarshalStrict goes through encoding/json, which
// matches names case-insensitively: readOnlyRootFileSystem would pass.)
func unmarshalStrict(data []byte, v any) error {
	j, err := sigsyaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeStrict decodes a manifest into its API type with unmarshalStrict
// and checks its apiVersion and kind.
func decodeStrict[T any](t *testing.T, file, apiVersion, kind string) *T {
	t.Helper()
	var obj T
	if err := unmarshalStrict(readFile(t, k8sDir+file), &obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(readFile(t, k8sDir+file), &tm); err != nil {
		t.Fatal(err)
	}
	if tm.APIVersion != apiVersion || tm.Kind != kind {
		t.Fatalf("%s is %s %s, want %s %s", file, tm.APIVersion, tm.Kind, apiVersion, kind)
	}
	return &obj
}

type manifests struct {
	cm      *corev1.ConfigMap
	deploy  *appsv1.Deployment
	service *corev1.Service
	pdb     *policyv1.PodDisruptionBudget
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	return manifests{
		cm:      decodeStrict[corev1.ConfigMap](t, "configmap.yaml", "v1", "ConfigMap"),
		deploy:  decodeStrict[appsv1.Deployment](t, "deployment.yaml", "apps/v1", "Deployment"),
		service: decodeStrict[corev1.Service](t, "service.yaml", "v1", "Service"),
		pdb:     decodeStrict[policyv1.PodDisruptionBudget](t, "pdb.yaml", "policy/v1", "PodDisruptionBudget"),
	}
}

// kubernetesConfig is the srht-registry config the ConfigMap carries.
func kubernetesConfig(t *testing.T) []byte {
	t.Helper()
	cm := decodeStrict[corev1.ConfigMap](t, "configmap.yaml", "v1", "ConfigMap")
	data, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("configmap.yaml has no config.yaml key")
	}
	return []byte(data)
}

func findContainer(t *testing.T, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

// mountOf returns the volume mount of c under which file lies, and the
// file's path inside the volume.
func mountOf(t *testing.T, c *corev1.Container, file string) (corev1.VolumeMount, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		if strings.HasPrefix(file, dir) {
			return m, strings.TrimPrefix(file, dir)
		}
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, file)
	return corev1.VolumeMount{}, ""
}

func volume(t *testing.T, spec *corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// containerPort resolves a probe's or a Service's port (a number or a
// port name) to the container port number.
func containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// TestKubernetes holds the manifests to the server: the probes, ports,
// mounts, grace period and security settings against the ConfigMap's
// config and the image.
func TestKubernetes(t *testing.T) {
	m := loadManifests(t)
	d := m.deploy
	spec := &d.Spec.Template.Spec
	podLabels := d.Spec.Template.Labels
	c := findContainer(t, spec.Containers, containerName)

	// The config file the container is started with is the ConfigMap's.
	if len(c.Args) != 3 || c.Args[0] != "serve" || c.Args[1] != "--config" {
		t.Fatalf("container args %q, want serve --config FILE", c.Args)
	}
	mount, key := mountOf(t, c, c.Args[2])
	if v := volume(t, spec, mount.Name); v.ConfigMap == nil || v.ConfigMap.Name != m.cm.Name {
		t.Fatalf("--config %s is not in ConfigMap %s", c.Args[2], m.cm.Name)
	}
	data, ok := m.cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q for --config %s", m.cm.Name, key, c.Args[2])
	}
	cfg := parseConfig(t, "configmap.yaml", []byte(data))

	t.Run("replicas and selectors", func(t *testing.T) {
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
			t.Errorf("replicas %v: the example runs several", d.Spec.Replicas)
		}
		if !selects(t, d.Spec.Selector, podLabels) {
			t.Error("the Deployment's selector does not select its pods")
		}
		if !selects(t, &metav1.LabelSelector{MatchLabels: m.service.Spec.Selector}, podLabels) {
			t.Error("the Service's selector does not select the pods")
		}
		if !selects(t, m.pdb.Spec.Selector, podLabels) {
			t.Error("the PodDisruptionBudget's selector does not select the pods")
		}
		if mina := m.pdb.Spec.MinAvailable; mina == nil || mina.Type != intstr.Int || d.Spec.Replicas == nil || mina.IntVal >= *d.Spec.Replicas {
			t.Errorf("PodDisruptionBudget minAvailable %v must be a number below replicas, or no pod may ever be evicted", mina)
		}
	})

	t.Run("probes on the listen port", func(t *testing.T) {
		listen := int32(port(t, cfg.Listen))
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"livenessProbe", c.LivenessProbe, "/healthz"},
			{"readinessProbe", c.ReadinessProbe, "/readyz"},
			{"startupProbe", c.StartupProbe, "/healthz"},
		} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: want an httpGet probe of %s", p.name, p.path)
				continue
			}
			g := p.probe.HTTPGet
			if g.Path != p.path {
				t.Errorf("%s probes %s, want %s", p.name, g.Path, p.path)
			}
			if got := containerPort(t, c, g.Port); got != listen {
				t.Errorf("%s probes port %d, but the config listens on %s", p.name, got, cfg.Listen)
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				t.Errorf("%s uses %s; the config serves plain HTTP", p.name, g.Scheme)
			}
		}
		// The server listens only after policy.startup_wait at the worst:
		// the startup probe must wait longer.
		sp := c.StartupProbe
		if sp != nil && float64(sp.PeriodSeconds*sp.FailureThreshold+sp.InitialDelaySeconds) <= cfg.Policy.StartupWait.D().Seconds() {
			t.Errorf("the startup probe gives up after %ds, within policy.startup_wait %v", sp.PeriodSeconds*sp.FailureThreshold, cfg.Policy.StartupWait)
		}
	})

	t.Run("service and metrics ports", func(t *testing.T) {
		if m.service.Spec.Type != "" && m.service.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service type %s, want ClusterIP (the ingress reaches it)", m.service.Spec.Type)
		}
		want := map[string]int32{"auth": int32(port(t, cfg.Listen)), "metrics": int32(port(t, cfg.Metrics.Listen))}
		for _, sp := range m.service.Spec.Ports {
			w, ok := want[sp.Name]
			if !ok {
				t.Errorf("Service port %q: unexpected", sp.Name)
				continue
			}
			delete(want, sp.Name)
			if got := containerPort(t, c, sp.TargetPort); got != w {
				t.Errorf("Service port %s targets container port %d, want %d (from the config)", sp.Name, got, w)
			}
		}
		for name := range want {
			t.Errorf("Service has no %s port", name)
		}
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(port(t, cfg.Metrics.Listen)) || ann["prometheus.io/path"] != cfg.Metrics.Path {
			t.Errorf("scrape annotations %v do not match metrics.listen %s and metrics.path %s", ann, cfg.Metrics.Listen, cfg.Metrics.Path)
		}
	})

	t.Run("graceful shutdown", func(t *testing.T) {
		var sleep int64
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Error("no preStop sleep: pods get SIGTERM while the ingress still sends them requests")
		} else {
			sleep = c.Lifecycle.PreStop.Sleep.Seconds
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
			t.Error("preStop exec: the image has no shell and no sleep binary")
		}
		need := sleep + int64(math.Ceil(cfg.Limits.ShutdownTimeout.D().Seconds()))
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if spec.TerminationGracePeriodSeconds != nil {
			grace = *spec.TerminationGracePeriodSeconds
		}
		if grace <= need {
			t.Errorf("terminationGracePeriodSeconds %d must exceed the preStop sleep %ds plus limits.shutdown_timeout %v", grace, sleep, cfg.Limits.ShutdownTimeout)
		}
	})

	t.Run("security context", func(t *testing.T) {
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != imageUser {
			t.Fatalf("pod securityContext %+v: want runAsNonRoot and runAsUser %d (the image's user)", psc, imageUser)
		}
		if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("pod seccompProfile is not RuntimeDefault")
		}
		for _, ctr := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			sc := ctr.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("container %s has no securityContext", ctr.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("container %s: allowPrivilegeEscalation is not false", ctr.Name)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("container %s: readOnlyRootFilesystem is not true", ctr.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("container %s: capabilities are not drop [ALL]", ctr.Name)
			case sc.RunAsUser != nil && *sc.RunAsUser == 0, sc.Privileged != nil && *sc.Privileged:
				t.Errorf("container %s runs as root or privileged", ctr.Name)
			}
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Error("the server never calls the Kubernetes API: do not mount a service account token")
		}
	})

	t.Run("config for a cluster", func(t *testing.T) {
		if len(cfg.TrustedProxies) == 0 {
			t.Error("trusted_proxies is empty: behind an ingress every client would be the ingress pod's address")
		}
		if cfg.TLS.Certificate == "" && !cfg.InsecureHTTP {
			t.Error("plain HTTP on a pod address needs insecure_http (TLS ends at the ingress)")
		}
	})

	t.Run("signing key copied to 0600", func(t *testing.T) {
		// The key the config names lies in an in-memory emptyDir, mounted
		// read-only into the server...
		keyMount, keyFile := mountOf(t, c, cfg.Token.Key)
		if !keyMount.ReadOnly {
			t.Error("the server's key volume is writable; it only reads it")
		}
		kv := volume(t, spec, keyMount.Name)
		if kv.EmptyDir == nil || kv.EmptyDir.Medium != corev1.StorageMediumMemory {
			t.Errorf("volume %s holding token.key is not an in-memory emptyDir", kv.Name)
		}
		// ...where an init container installed it with mode 0600 from the
		// Secret, which the server itself does not mount.
		if len(spec.InitContainers) != 1 {
			t.Fatalf("want one init container (the key copy), got %d", len(spec.InitContainers))
		}
		ic := &spec.InitContainers[0]
		args := append(slices.Clone(ic.Command), ic.Args...)
		if len(args) != 5 || args[0] != "install" || args[1] != "-m" || args[2] != "0600" {
			t.Fatalf("init container runs %q, want install -m 0600 SRC DST", args)
		}
		src, dst := args[3], args[4]
		dm, dstFile := mountOf(t, ic, dst)
		if dm.Name != keyMount.Name || dstFile != keyFile || dm.ReadOnly {
			t.Errorf("the init container writes %s (volume %s, %s), but the server reads token.key %s (volume %s, %s)", dst, dm.Name, dstFile, cfg.Token.Key, keyMount.Name, keyFile)
		}
		sm, srcFile := mountOf(t, ic, src)
		sv := volume(t, spec, sm.Name)
		if sv.Secret == nil || sv.Secret.SecretName == "" {
			t.Fatalf("the init container copies %s from volume %s, which is not a Secret", src, sm.Name)
		}
		if srcFile != "key.pem" {
			t.Errorf("the init container copies Secret key %q; docs/operations.md creates the Secret with key.pem", srcFile)
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == sm.Name {
				t.Errorf("the server mounts the key Secret %s too; it needs only the 0600 copy", sv.Secret.SecretName)
			}
		}
		// The init container runs as the pod's user, which reads the Secret
		// through fsGroup (the kubelet makes its files group-readable).
		if psc := spec.SecurityContext; psc.FSGroup == nil || *psc.FSGroup != imageUser {
			t.Errorf("fsGroup %v: the init container (user %d) could not read the Secret", psc.FSGroup, imageUser)
		}
	})

	t.Run("htpasswd from a Secret", func(t *testing.T) {
		hm, hf := mountOf(t, c, cfg.Authn.Htpasswd)
		hv := volume(t, spec, hm.Name)
		if hv.Secret == nil || hf != path.Base(cfg.Authn.Htpasswd) {
			t.Errorf("authn.htpasswd %s is not a file of a Secret volume", cfg.Authn.Htpasswd)
		}
	})
}

// TestKustomization checks that kustomization.yaml lists exactly the
// manifests in the directory.
func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := unmarshalStrict(readFile(t, k8sDir+"kustomization.yaml"), &k); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") && e.Name() != "kustomization.yaml" {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	got := slices.Sorted(slices.Values(k.Resources))
	if k.Kind != "Kustomization" || !slices.Equal(got, files) {
		t.Errorf("kustomization.yaml (%s) lists %v, the directory has %v", k.Kind, got, files)
	}
}
