package helm_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

const (
	chartDir = "nkudo"
	release  = "edge"
	ns       = "fleet"
	fullname = "edge-nkudo"
)

// TestChart lints and renders the chart with several value sets, decodes
// every manifest strictly, and checks what a working install depends on.
func TestChart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		set   []string
		kinds []string
		// secrets the Deployment reads: keys Secret, database Secret/key.
		keysSecret, dbSecret, dbKey string
		check                       func(t *testing.T, r rendered)
	}{{
		name: "defaults: existing Secrets, external PostgreSQL",
		kinds: []string{"v1/ServiceAccount", "v1/Service", "v1/Service", "apps/v1/Deployment",
			"policy/v1/PodDisruptionBudget"},
		keysSecret: "nkudo-keys", dbSecret: "nkudo-database", dbKey: "uri",
		check: func(t *testing.T, r rendered) {
			svc := r.services[fullname]
			require.Equal(t, corev1.ServiceTypeLoadBalancer, svc.Spec.Type)
			require.Equal(t, corev1.ServiceExternalTrafficPolicyLocal, svc.Spec.ExternalTrafficPolicy,
				"client addresses kept for per-address rate limits")
		},
	}, {
		name: "everything on: created Secrets, ServiceMonitor, NodePort, names",
		set: []string{
			"replicaCount=3", "keys.existingSecret=", "keys.adminKey=admin-key-0123456789abcdef",
			"keys.pkiSealKey=c2VhbC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
			"database.existingSecret=", "database.url=postgres://nkudo:pw@pg.example.com:5432/nkudo",
			"metrics.serviceMonitor.enabled=true", "service.type=NodePort", "service.nodePort=30443",
			"serverNames={nkudo.example.com,203.0.113.10}", "trustedProxies={10.0.0.0/8}",
			"extraEnv[0].name=HEARTBEAT_INTERVAL", "extraEnv[0].value=20s",
		},
		kinds: []string{"v1/ServiceAccount", "v1/Secret", "v1/Secret", "v1/Service", "v1/Service",
			"apps/v1/Deployment", "policy/v1/PodDisruptionBudget", "monitoring.coreos.com/v1/ServiceMonitor"},
		keysSecret: fullname + "-keys", dbSecret: fullname + "-database", dbKey: "uri",
		check: func(t *testing.T, r rendered) {
			require.Equal(t, int32(3), *r.deployment.Spec.Replicas)
			keys := r.secrets[fullname+"-keys"]
			require.Equal(t, "admin-key-0123456789abcdef", keys.StringData["admin-key"])
			require.NotEmpty(t, keys.StringData["pki-seal-key"])
			require.Equal(t, "postgres://nkudo:pw@pg.example.com:5432/nkudo", r.secrets[fullname+"-database"].StringData["uri"])
			require.Contains(t, r.deployment.Spec.Template.Annotations, "checksum/keys", "a new key restarts the pods")

			env := envOf(r.deployment.Spec.Template.Spec.Containers[0])
			names := strings.Split(env["NKUDO_SERVER_NAMES"].Value, ",")
			require.Subset(t, names, []string{"nkudo.example.com", "203.0.113.10", fullname, fullname + "." + ns + ".svc"})
			require.Equal(t, "10.0.0.0/8", env["NKUDO_TRUSTED_PROXIES"].Value)
			require.Equal(t, "20s", env["HEARTBEAT_INTERVAL"].Value)

			svc := r.services[fullname]
			require.Equal(t, corev1.ServiceTypeNodePort, svc.Spec.Type)
			require.Equal(t, int32(30443), svc.Spec.Ports[0].NodePort)

			sm := r.serviceMonitor
			metrics := r.services[fullname+"-metrics"]
			for k, v := range sm.Spec.Selector.MatchLabels {
				require.Equal(t, v, metrics.Labels[k], "ServiceMonitor selects the metrics Service by %s", k)
			}
			require.NotEqual(t, "true", svc.Labels["nkudo.io/metrics"], "and not the agent Service")
			require.Equal(t, []string{ns}, sm.Spec.NamespaceSelector.MatchNames)
			require.Len(t, sm.Spec.Endpoints, 1)
			require.Equal(t, metrics.Spec.Ports[0].Name, sm.Spec.Endpoints[0].Port)
			require.Equal(t, "/metrics", sm.Spec.Endpoints[0].Path)
		},
	}, {
		name:  "CloudNativePG cluster",
		set:   []string{"cloudnativepg.enabled=true", "metrics.enabled=false", "serviceAccount.create=false"},
		kinds: []string{"v1/Service", "apps/v1/Deployment", "policy/v1/PodDisruptionBudget", "postgresql.cnpg.io/v1/Cluster"},
		// The Secret CloudNativePG writes for the Cluster's owner.
		keysSecret: "nkudo-keys", dbSecret: fullname + "-pg-app", dbKey: "uri",
		check: func(t *testing.T, r rendered) {
			c := r.pgCluster
			require.Equal(t, fullname+"-pg", c.Name)
			require.Equal(t, int32(3), c.Spec.Instances)
			require.Equal(t, "nkudo", c.Spec.Bootstrap.InitDB.Database)
			require.Equal(t, "20Gi", c.Spec.Storage.Size)
			require.Equal(t, "200", c.Spec.PostgreSQL.Parameters["max_connections"])
			require.Equal(t, "default", r.deployment.Spec.Template.Spec.ServiceAccountName)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := helm(t, append([]string{"lint", "--strict", chartDir}, setArgs(tt.set)...)...)
			require.NoError(t, err, "%s", out)
			out, err = helm(t, append([]string{"template", release, chartDir, "--namespace", ns}, setArgs(tt.set)...)...)
			require.NoError(t, err)
			r := decode(t, out)
			require.ElementsMatch(t, tt.kinds, r.kinds)
			checkServer(t, r, tt.keysSecret, tt.dbSecret, tt.dbKey)
			tt.check(t, r)
		})
	}
}

// TestChartRefuses: values that cannot work fail at install time with a
// message saying what to set.
func TestChartRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"one replica", []string{"replicaCount=1"}, "replicaCount must be at least 2"},
		{"no database", []string{"database.existingSecret="}, "nkudo needs PostgreSQL"},
		{"created keys without an admin key", []string{"keys.existingSecret=", "keys.pkiSealKey=x"}, "keys.adminKey is required"},
		{"created keys without a seal key", []string{"keys.existingSecret=", "keys.adminKey=admin-key-0123456789abcdef"}, "keys.pkiSealKey is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := helm(t, append([]string{"template", release, chartDir}, setArgs(tt.set)...)...)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	return env
}

// requireSecretRef checks that a variable comes from the named Secret key.
func requireSecretRef(t *testing.T, env map[string]corev1.EnvVar, name, secret, key string) {
	t.Helper()
	e, ok := env[name]
	require.True(t, ok, "%s is set", name)
	require.Empty(t, e.Value, "%s never inline", name)
	require.NotNil(t, e.ValueFrom, name)
	require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s comes from a Secret", name)
	require.Equal(t, secret, e.ValueFrom.SecretKeyRef.Name, name)
	require.Equal(t, key, e.ValueFrom.SecretKeyRef.Key, name)
}

// checkServer checks what every value set must keep: replicas, probes over
// HTTPS, secrets from Secrets, the migrate init step, a locked-down
// container, and Services and budget that select the server's pods.
func checkServer(t *testing.T, r rendered, keysSecret, dbSecret, dbKey string) {
	t.Helper()
	d := r.deployment
	require.NotNil(t, d)
	require.GreaterOrEqual(t, *d.Spec.Replicas, int32(2))
	podLabels := d.Spec.Template.Labels
	for k, v := range d.Spec.Selector.MatchLabels {
		require.Equal(t, v, podLabels[k], "the Deployment selects its own pods")
	}
	pod := d.Spec.Template.Spec
	require.NotNil(t, pod.AutomountServiceAccountToken)
	require.False(t, *pod.AutomountServiceAccountToken)
	require.True(t, *pod.SecurityContext.RunAsNonRoot)

	require.Len(t, pod.InitContainers, 1)
	migrate := pod.InitContainers[0]
	require.Equal(t, []string{"migrate"}, migrate.Args)
	requireSecretRef(t, envOf(migrate), "NKUDO_DATABASE_URL", dbSecret, dbKey)

	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Equal(t, migrate.Image, c.Image, "migrations of the same version as the server")
	require.Equal(t, []string{"serve"}, c.Args)
	env := envOf(c)
	requireSecretRef(t, env, "NKUDO_DATABASE_URL", dbSecret, dbKey)
	requireSecretRef(t, env, "NKUDO_ADMIN_KEY", keysSecret, "admin-key")
	requireSecretRef(t, env, "NKUDO_PKI_SEAL_KEY", keysSecret, "pki-seal-key")
	require.Equal(t, "0.0.0.0:8443", env["NKUDO_ADDR"].Value)
	require.Equal(t, "0.0.0.0:9464", env["NKUDO_METRICS_ADDR"].Value)
	for _, v := range []string{"NKUDO_RETENTION_LOGS", "NKUDO_RETENTION_AUDIT", "NKUDO_RETENTION_PLANS"} {
		require.NotEmpty(t, env[v].Value, v)
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, map[string]int32{"https": 8443, "metrics": 9464}, ports)
	for _, probe := range []struct {
		p    *corev1.Probe
		path string
	}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}, {c.StartupProbe, "/healthz"}} {
		require.NotNil(t, probe.p, probe.path)
		require.NotNil(t, probe.p.HTTPGet, probe.path)
		require.Equal(t, probe.path, probe.p.HTTPGet.Path)
		require.Equal(t, corev1.URISchemeHTTPS, probe.p.HTTPGet.Scheme, "the server only speaks HTTPS")
		require.Equal(t, "https", probe.p.HTTPGet.Port.String())
	}

	for _, ctr := range []corev1.Container{migrate, c} {
		sc := ctr.SecurityContext
		require.NotNil(t, sc, ctr.Name)
		require.True(t, *sc.RunAsNonRoot, ctr.Name)
		require.True(t, *sc.ReadOnlyRootFilesystem, ctr.Name)
		require.False(t, *sc.AllowPrivilegeEscalation, ctr.Name)
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, ctr.Name)
		mounts := map[string]bool{}
		for _, m := range ctr.VolumeMounts {
			mounts[m.MountPath] = true
		}
		require.True(t, mounts["/var/lib/nkudo"] && mounts["/tmp"], "%s: writable data dir and /tmp on a read-only root", ctr.Name)
	}
	require.False(t, c.Resources.Requests.Cpu().IsZero(), "cpu request")
	require.False(t, c.Resources.Requests.Memory().IsZero(), "memory request")
	require.False(t, c.Resources.Limits.Memory().IsZero(), "memory limit")

	require.NotNil(t, r.pdb)
	require.Equal(t, d.Spec.Selector.MatchLabels, r.pdb.Spec.Selector.MatchLabels)
	require.Less(t, r.pdb.Spec.MinAvailable.IntValue(), int(*d.Spec.Replicas), "a node drain can proceed")

	require.NotEmpty(t, r.services)
	for _, name := range slices.Sorted(maps.Keys(r.services)) {
		svc := r.services[name]
		for k, v := range svc.Spec.Selector {
			require.Equal(t, v, podLabels[k], "Service %s selects the server's pods", name)
		}
		for _, p := range svc.Spec.Ports {
			require.Equal(t, corev1.ProtocolTCP, p.Protocol, "%s: plain TCP, TLS passed through", name)
			require.Contains(t, ports, p.TargetPort.String(), "%s targets a named container port", name)
		}
	}
	agentSvc := r.services[fullname]
	require.NotNil(t, agentSvc, "the agent channel Service")
	require.Equal(t, "https", agentSvc.Spec.Ports[0].TargetPort.String())
}
