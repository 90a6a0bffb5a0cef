// Package specfile finds the reference API descriptions that tests use to
// check the stand-ins for systems that cannot run here (Cloud Hypervisor,
// NetBird). They live in ../shared/specs beside the repository and are
// read from there, never copied in.
package specfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvDir overrides where the spec files are looked for.
const EnvDir = "NKUDO_SPECS_DIR"

// Dir returns the directory holding the spec files: $NKUDO_SPECS_DIR, or
// ../shared/specs next to the repository root. When it cannot be found the
// test is skipped with the reason, except in CI (CI=true) or with
// NKUDO_REQUIRE_SPECS=1, where it fails: there the specs must be present.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir, err := find()
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("NKUDO_REQUIRE_SPECS") == "1" {
			tb.Fatalf("reference specs required: %v", err)
		}
		tb.Skipf("reference specs not available (%v); set %s", err, EnvDir)
	}
	return dir
}

// Path returns the path of one spec file, e.g. "cloud-hypervisor.yaml".
func Path(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(Dir(tb), name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("reference spec %s: %v", name, err)
	}
	return p
}

func find() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", fmt.Errorf("%s=%s is not a directory", EnvDir, d)
		}
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding working directory: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			specs := filepath.Join(dir, "..", "shared", "specs")
			if st, err := os.Stat(specs); err == nil && st.IsDir() {
				return filepath.Clean(specs), nil
			}
			return "", fmt.Errorf("no ../shared/specs beside the repository root %s", dir)
		}
		if parent := filepath.Dir(dir); parent == dir {
			return "", errors.New("repository root (go.mod) not found above the working directory")
		}
	}
}
