package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// testImages is the image directory of every test rig, holding root.img.
var testImages string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "executor-images")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "root.img"), []byte("disk"), 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating test images:", err)
		os.Exit(1)
	}
	testImages = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
