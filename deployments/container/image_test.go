package container_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildImage runs build.sh, as `task image` does, with its own tag and
// build context, and returns the context directory (which also holds the
// static nkudo-agent).
func buildImage(t *testing.T, tag string) string {
	t.Helper()
	ctxDir := t.TempDir()
	cmd := exec.Command("bash", "build.sh", tag, ctxDir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build.sh:\n%s", out)
	t.Cleanup(func() { _, _ = docker("image", "rm", "-f", tag) })
	return ctxDir
}

// imageConfig is the part of `docker image inspect` the image promises.
type imageConfig struct {
	User        string
	Entrypoint  []string
	Cmd         []string
	Env         []string
	Volumes     map[string]struct{}
	Healthcheck struct{ Test []string }
}

// checkImageConfig: non-root numeric user, the server as entry point, the
// listeners facing the container's network, data in /var/lib/nkudo, and a
// health check that needs no shell.
func checkImageConfig(t *testing.T, tag string) {
	t.Helper()
	var cfg imageConfig
	require.NoError(t, json.Unmarshal([]byte(mustDocker(t, "image", "inspect", "--format", "{{json .Config}}", tag)), &cfg))
	require.Equal(t, "65532:65532", cfg.User)
	require.Equal(t, []string{"/usr/local/bin/nkudo-server"}, cfg.Entrypoint)
	require.Equal(t, []string{"serve"}, cfg.Cmd)
	require.Contains(t, cfg.Env, "NKUDO_ADDR=0.0.0.0:8443")
	require.Contains(t, cfg.Env, "NKUDO_DATA_DIR=/var/lib/nkudo")
	require.Contains(t, cfg.Volumes, "/var/lib/nkudo")
	require.GreaterOrEqual(t, len(cfg.Healthcheck.Test), 3)
	require.Equal(t, []string{"CMD", "/usr/local/bin/nkudo-server", "healthcheck"}, cfg.Healthcheck.Test[:3],
		"exec form: there is no shell in the image")
}

// imageFile is one entry of the image's layers.
type imageFile struct {
	mode     int64
	uid, gid int
	dir      bool
}

// imageFiles lists every entry of every layer of the image, from
// `docker save`.
func imageFiles(t *testing.T, tag string) map[string]imageFile {
	t.Helper()
	cmd := exec.Command("docker", "save", tag)
	raw, err := cmd.Output()
	require.NoError(t, err, "docker save")
	blobs := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		blobs[h.Name] = b
	}
	var manifest []struct{ Layers []string }
	require.NoError(t, json.Unmarshal(blobs["manifest.json"], &manifest), "docker save's manifest.json")
	require.Len(t, manifest, 1)
	files := map[string]imageFile{}
	for _, layer := range manifest[0].Layers {
		r := io.Reader(bytes.NewReader(blobs[layer]))
		if bytes.HasPrefix(blobs[layer], []byte{0x1f, 0x8b}) {
			gz, err := gzip.NewReader(r)
			require.NoError(t, err)
			r = gz
		}
		lt := tar.NewReader(r)
		for {
			h, err := lt.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, "layer %s", layer)
			name := path.Clean("/" + h.Name)
			files[name] = imageFile{mode: h.Mode, uid: h.Uid, gid: h.Gid, dir: h.Typeflag == tar.TypeDir}
		}
	}
	return files
}

// checkImageFiles: nothing but the server, CA certificates, the user's
// names, and the two writable directories.
func checkImageFiles(t *testing.T, tag string) {
	t.Helper()
	files := imageFiles(t, tag)
	var regular []string
	for name, f := range files {
		if !f.dir {
			regular = append(regular, name)
		}
	}
	require.ElementsMatch(t, []string{
		"/etc/group", "/etc/passwd", "/etc/ssl/certs/ca-certificates.crt", "/usr/local/bin/nkudo-server",
	}, regular)
	data := files["/var/lib/nkudo"]
	require.True(t, data.dir)
	require.Equal(t, [2]int{65532, 65532}, [2]int{data.uid, data.gid}, "the data dir belongs to the server's user")
	require.Equal(t, int64(0o700), data.mode&0o777)
	require.Equal(t, int64(0o1777), files["/tmp"].mode&0o7777, "/tmp is world-writable and sticky")
	require.Equal(t, 0, files["/usr/local/bin/nkudo-server"].uid, "the server cannot rewrite its own binary")
}

// fingerprintFromLogs reads the CA fingerprint the server logs when ready
// (JSON logs in the image): what an operator pins agents to.
func fingerprintFromLogs(t *testing.T, logs string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg         string `json:"msg"`
			Fingerprint string `json:"ca_fingerprint"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "nkudo-server ready" {
			return line.Fingerprint
		}
	}
	t.Fatalf("no \"nkudo-server ready\" line with ca_fingerprint in the logs:\n%s", logs)
	return ""
}

func agentBin(ctxDir string) string { return filepath.Join(ctxDir, "bin", "nkudo-agent") }
