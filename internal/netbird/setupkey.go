package netbird

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/kubedoio/n-kudo/internal/agent/statefile"
)

// maxSetupKeyBytes bounds what Read accepts: NetBird setup keys are UUIDs;
// anything much larger is not a key.
const maxSetupKeyBytes = 1 << 10

// SetupKeyFile is the one place a NetBird setup key rests on the agent:
// a file of mode 0600 holding the key and a newline.
type SetupKeyFile struct {
	Path string
}

// Write atomically replaces the file with key, with mode 0600.
func (f SetupKeyFile) Write(key string) error {
	key = strings.TrimSpace(key)
	if key == "" {
		return fmt.Errorf("writing netbird setup key file %s: %w", f.Path, ErrNoSetupKey)
	}
	if len(key) > maxSetupKeyBytes || strings.ContainsAny(key, "\r\n") {
		return fmt.Errorf("writing netbird setup key file %s: key is not a single short line: %w", f.Path, ErrNoSetupKey)
	}
	if err := statefile.WriteBytes(f.Path, []byte(key+"\n")); err != nil {
		return fmt.Errorf("writing netbird setup key file: %w", err)
	}
	return nil
}

// Read returns the key. A missing or empty file wraps ErrNoSetupKey (and
// os.ErrNotExist when missing); a file readable by group or others wraps
// ErrInsecureSetupKeyFile and its key is not used.
func (f SetupKeyFile) Read() (string, error) {
	st, err := os.Stat(f.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("reading netbird setup key file %s: %w: %w", f.Path, ErrNoSetupKey, err)
		}
		return "", fmt.Errorf("reading netbird setup key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("reading netbird setup key file %s: not a regular file: %w", f.Path, ErrInsecureSetupKeyFile)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("reading netbird setup key file %s: mode %#o: %w", f.Path, perm, ErrInsecureSetupKeyFile)
	}
	if st.Size() > maxSetupKeyBytes {
		return "", fmt.Errorf("reading netbird setup key file %s: %d bytes: %w", f.Path, st.Size(), ErrNoSetupKey)
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("reading netbird setup key file: %w", err)
	}
	key := strings.TrimSpace(string(data))
	if key == "" {
		return "", fmt.Errorf("reading netbird setup key file %s: empty: %w", f.Path, ErrNoSetupKey)
	}
	return key, nil
}

// Remove deletes the file; a missing file is not an error. The agent
// removes the key once it has joined: a one-off key is spent anyway.
func (f SetupKeyFile) Remove() error {
	if err := os.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing netbird setup key file: %w", err)
	}
	return nil
}
