package container_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// requireDockerEnv turns a missing Docker into a failure instead of a skip.
const requireDockerEnv = "NKUDO_REQUIRE_DOCKER"

// dockerTimeout bounds one docker command; an image build on a loaded
// 2-core machine compiles three binaries first.
const dockerTimeout = 15 * time.Minute

// docker runs the docker CLI and returns its combined output.
func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// mustDocker runs docker and fails the test on an error.
func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireDocker skips the test when no Docker daemon answers, or fails it
// when NKUDO_REQUIRE_DOCKER=1.
func requireDocker(t *testing.T) {
	t.Helper()
	reason := ""
	if _, err := exec.LookPath("docker"); err != nil {
		reason = "no docker CLI on PATH"
	} else if out, err := docker("info", "--format", "{{.ServerVersion}}"); err != nil || strings.TrimSpace(out) == "" {
		reason = fmt.Sprintf("no Docker daemon reachable (%v)", err)
	}
	if reason == "" {
		return
	}
	if os.Getenv(requireDockerEnv) == "1" {
		t.Fatalf("%s=1 but %s", requireDockerEnv, reason)
	}
	t.Skipf("%s; install and start Docker to run it (%s=1 makes this a failure)", reason, requireDockerEnv)
}

// uniqueName keeps the images, volumes and containers of concurrent test
// runs on one daemon apart.
func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
