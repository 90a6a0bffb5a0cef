package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrCorrupt is returned by Read when the file exists but is not valid JSON
// for the target value. With Write as the only writer this cannot happen
// short of disk corruption or a human edit, so callers should surface it
// rather than silently start from empty state.
var ErrCorrupt = errors.New("state file corrupt")

// Mode is the permission of every file Write creates.
const Mode os.FileMode = 0o600

// tempMarker separates the target's name from the random suffix of its
// temporary files: ".<name>.tmp-<random>". The leading dot keeps leftovers
// out of casual directory listings and out of any glob on the target name.
const tempMarker = ".tmp-"

// Write atomically replaces the file at path with the JSON encoding of v.
// The directory must exist.
func Write(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding state for %s: %w", path, err)
	}
	data = append(data, '\n')
	return WriteBytes(path, data)
}

// WriteBytes atomically replaces the file at path with data.
func WriteBytes(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// CreateTemp already uses 0600; Chmod makes the mode independent of
	// that implementation detail.
	if err := tmp.Chmod(Mode); err != nil {
		return fmt.Errorf("setting mode of %s: %w", tmpName, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", tmpName, path, err)
	}
	if err := syncDir(dir); err != nil {
		// The new content is in place and visible; only its durability
		// across a power cut is uncertain. Report it, the caller decides.
		return fmt.Errorf("syncing directory of %s: %w", path, err)
	}
	return nil
}

// Read decodes the JSON file at path into v. A missing file yields an error
// that wraps os.ErrNotExist (test with errors.Is), so callers can start from
// empty state; invalid content yields an error wrapping ErrCorrupt.
func Read(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading state file %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding state file %s: %w: %w", path, ErrCorrupt, err)
	}
	return nil
}

// RemoveStale deletes temporary files a crashed Write left next to path and
// returns how many it removed. Call it only when no Write to path can be in
// flight (at start-up, before the owner serves anything): it would otherwise
// delete a concurrent writer's temporary file and make that Write fail.
func RemoveStale(path string) (int, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("listing %s for stale temporary files: %w", dir, err)
	}
	prefix := "." + base + tempMarker
	removed := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("removing stale temporary file %s: %w", e.Name(), err)
		}
		removed++
	}
	return removed, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
