package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TempMarker separates the target's name from the random suffix of its
// temporary files: ".<name>" + TempMarker + "<random>". The leading dot keeps
// leftovers out of casual directory listings and out of any glob on the
// target name.
const TempMarker = ".tmp-"

// Write atomically replaces the file at path with data, with exactly the
// permission bits of mode whatever the umask (a 0644 certificate stays
// world-readable, a 0600 key never is, even for an instant). The directory
// must exist.
//
// An error after the rename (syncing the directory) means the new content
// is in place and visible but its durability across a power cut is
// uncertain; the caller decides whether that matters.
func Write(path string, data []byte, mode fs.FileMode) (err error) {
	dir, base := split(path)
	tmp, err := os.CreateTemp(dir, "."+base+TempMarker+"*")
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
	// CreateTemp uses 0600 before the umask; Chmod makes the final mode
	// exact and independent of both.
	if err := tmp.Chmod(mode.Perm()); err != nil {
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
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("syncing directory of %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the creations, renames and removals
// of its entries durable. Write calls it itself; callers need it after
// their own os.Remove when the removal must survive a power cut.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// RemoveStale deletes temporary files a crashed Write left next to path and
// returns how many it removed. Call it only when no Write to path can be in
// flight (at start-up, before the owner serves anything): it would otherwise
// delete a concurrent writer's temporary file and make that Write fail.
func RemoveStale(path string) (int, error) {
	dir, base := split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("listing %s for stale temporary files: %w", dir, err)
	}
	prefix := "." + base + TempMarker
	removed := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("removing stale temporary file %s: %w", e.Name(), err)
		}
		removed++
	}
	return removed, nil
}

// split is filepath.Split with "." for a bare file name, so the temporary
// file is created beside the target rather than in os.TempDir.
func split(path string) (dir, base string) {
	dir, base = filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	return dir, base
}
