package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/kubedoio/n-kudo/internal/atomicfile"
)

// ErrCorrupt is returned by Read when the file exists but is not valid JSON
// for the target value. With Write as the only writer this cannot happen
// short of disk corruption or a human edit, so callers should surface it
// rather than silently start from empty state.
var ErrCorrupt = errors.New("state file corrupt")

// Mode is the permission of every file Write creates.
const Mode os.FileMode = 0o600

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

// WriteBytes atomically replaces the file at path with data, mode Mode.
func WriteBytes(path string, data []byte) error {
	return atomicfile.Write(path, data, Mode)
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
	return atomicfile.RemoveStale(path)
}
