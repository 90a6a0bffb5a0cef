package compose_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// load reads compose.yaml the way `docker compose --env-file FILE up`
// does: the env file, then the given variables on top; the test process's
// own environment is left out so the result does not depend on it.
func load(t *testing.T, envFile string, env ...string) (*types.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(env),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
	)
	require.NoError(t, err)
	return opts.LoadProject(context.Background())
}

func TestComposeLoadsWithTheExampleEnv(t *testing.T) {
	t.Parallel()
	p, err := load(t, ".env.example")
	require.NoError(t, err)
	require.Equal(t, "nkudo", p.Name)
	require.ElementsMatch(t, []string{"postgres", "nkudo-1", "nkudo-2"}, p.ServiceNames())

	pg, err := p.GetService("postgres")
	require.NoError(t, err)
	require.NotNil(t, pg.HealthCheck, "replicas wait for PostgreSQL to be healthy")

	var dbURLs []string
	hostPorts := map[string]bool{}
	dataVolumes := map[string]bool{}
	for _, name := range []string{"nkudo-1", "nkudo-2"} {
		s, err := p.GetService(name)
		require.NoError(t, err)
		require.Equal(t, "nkudo-server:dev", s.Image, "the image `task image` builds, from .env.example")
		require.Equal(t, types.ShellCommand{"serve"}, s.Command)
		require.True(t, s.ReadOnly, "%s: read-only root file system", name)
		require.Contains(t, s.CapDrop, "ALL")

		for _, v := range []string{"NKUDO_ADMIN_KEY", "NKUDO_PKI_SEAL_KEY", "NKUDO_DATABASE_URL", "NKUDO_SERVER_NAMES"} {
			require.NotNil(t, s.Environment[v], "%s: %s", name, v)
			require.NotEmpty(t, *s.Environment[v], "%s: %s", name, v)
		}
		dbURLs = append(dbURLs, *s.Environment["NKUDO_DATABASE_URL"])
		u, err := url.Parse(*s.Environment["NKUDO_DATABASE_URL"])
		require.NoError(t, err)
		require.Equal(t, "postgres", u.Scheme)
		require.Equal(t, "postgres", u.Hostname(), "%s reaches the compose PostgreSQL service", name)
		require.Equal(t, "replace-with-openssl-rand-base64-32", *s.Environment["NKUDO_PKI_SEAL_KEY"])

		dep, ok := s.DependsOn["postgres"]
		require.True(t, ok, "%s depends on postgres", name)
		require.Equal(t, types.ServiceConditionHealthy, dep.Condition)

		require.Len(t, s.Ports, 2)
		for _, port := range s.Ports {
			switch port.Target {
			case 8443:
				require.Empty(t, port.HostIP, "%s: the agent channel is published on every address", name)
				hostPorts[port.Published] = true
			case 9464:
				require.Equal(t, "127.0.0.1", port.HostIP, "%s: metrics stay on the host", name)
			default:
				t.Fatalf("%s publishes unexpected port %d", name, port.Target)
			}
		}
		require.Len(t, s.Volumes, 1)
		require.Equal(t, "/var/lib/nkudo", s.Volumes[0].Target)
		dataVolumes[s.Volumes[0].Source] = true
	}
	require.Equal(t, dbURLs[0], dbURLs[1], "both replicas share one database")
	require.Len(t, hostPorts, 2, "each replica on its own host port")
	require.Len(t, dataVolumes, 2, "each replica has its own data volume")

	second, err := p.GetService("nkudo-2")
	require.NoError(t, err)
	require.Equal(t, types.ServiceConditionHealthy, second.DependsOn["nkudo-1"].Condition,
		"replica 2 starts after replica 1 created the shared CA")
}

func TestComposeRefusesMissingSecrets(t *testing.T) {
	t.Parallel()
	empty := filepath.Join(t.TempDir(), "empty.env")
	require.NoError(t, os.WriteFile(empty, []byte("NKUDO_IMAGE=nkudo-server:dev\n"), 0o600))
	all := []string{"NKUDO_ADMIN_KEY=admin-key-0123456789abcdef", "NKUDO_PKI_SEAL_KEY=seal", "POSTGRES_PASSWORD=pw"}
	for i, missing := range []string{"NKUDO_ADMIN_KEY", "NKUDO_PKI_SEAL_KEY", "POSTGRES_PASSWORD"} {
		t.Run(missing, func(t *testing.T) {
			env := append(append([]string{}, all[:i]...), all[i+1:]...)
			_, err := load(t, empty, env...)
			require.ErrorContains(t, err, "set "+missing+" in .env")
		})
	}
	_, err := load(t, empty, all...)
	require.NoError(t, err, "all three given")
}
