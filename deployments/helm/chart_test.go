package helm_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// helmModule is Helm v4 from the Go module proxy, built by TestMain, so no
// helm binary has to be installed: `go run helm.sh/helm/v4/cmd/helm@v4.3.2`
// runs the same build.
const helmModule = "helm.sh/helm/v4/cmd/helm@v4.3.2"

// helmBin is the helm binary TestMain built.
var helmBin string

// TestMain builds helm once: the subtests run in parallel, and each
// `go run` of its own would compile Helm's dependencies again.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nkudo-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating a directory for helm:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "install", helmModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building %s: %v\n%s", helmModule, err, out)
		return 1
	}
	helmBin = filepath.Join(dir, "helm")
	return m.Run()
}

// helm runs a helm command on the chart directory and returns its
// standard output and, on failure, an error carrying standard error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin, args...)
	// Helm keeps caches and repository lists under these; a test must not
	// touch the user's.
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &helmError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// setArgs turns a case's values into --set flags.
func setArgs(set []string) []string {
	var args []string
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// rendered is one release rendered by `helm template`, every document
// decoded strictly into its API type.
type rendered struct {
	deployment     *appsv1.Deployment
	services       map[string]*corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	secrets        map[string]*corev1.Secret
	serviceAccount *corev1.ServiceAccount
	serviceMonitor *serviceMonitor
	pgCluster      *cnpgCluster
	kinds          []string
}

// newObject returns the API type a document of apiVersion/kind decodes
// into, or nil for a kind the chart is not expected to render.
func newObject(key string) any {
	switch key {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "v1/Service":
		return &corev1.Service{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &serviceMonitor{}
	case "postgresql.cnpg.io/v1/Cluster":
		return &cnpgCluster{}
	}
	return nil
}

func (r *rendered) add(t *testing.T, obj any) {
	t.Helper()
	switch o := obj.(type) {
	case *appsv1.Deployment:
		require.Nil(t, r.deployment, "one Deployment")
		r.deployment = o
	case *corev1.Service:
		r.services[o.Name] = o
	case *policyv1.PodDisruptionBudget:
		r.pdb = o
	case *corev1.Secret:
		r.secrets[o.Name] = o
	case *corev1.ServiceAccount:
		r.serviceAccount = o
	case *serviceMonitor:
		r.serviceMonitor = o
	case *cnpgCluster:
		r.pgCluster = o
	}
}

// decode splits helm template's output into documents and decodes each
// strictly: unknown or duplicate fields, and values of the wrong type,
// are errors.
func decode(t *testing.T, out string) rendered {
	t.Helper()
	r := rendered{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}}
	for doc := range strings.SplitSeq(out, "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---")
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &tm), "%s", doc)
		key := tm.APIVersion + "/" + tm.Kind
		obj := newObject(key)
		require.NotNil(t, obj, "the chart rendered %s, which this test does not know how to check:\n%s", key, doc)
		require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "strict decoding of %s:\n%s", key, doc)
		r.kinds = append(r.kinds, key)
		r.add(t, obj)
	}
	return r
}

// stripComments drops YAML comment lines (helm's "# Source:" headers).
func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
