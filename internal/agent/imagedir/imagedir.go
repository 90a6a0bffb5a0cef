package imagedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubedoio/n-kudo/internal/vmspec"
)

// DefaultDir is the image directory of an agent given none.
const DefaultDir = "/var/lib/nkudo-agent/images"

// Sentinel errors.
var (
	// ErrOutside: a path is not a regular file inside an image directory.
	ErrOutside = errors.New("not a regular file inside the agent's image directories")
	// ErrBadDir: an image directory cannot be used as one.
	ErrBadDir = errors.New("bad image directory")
)

// Dirs is the agent's set of image directories.
type Dirs struct {
	dirs []string
}

// New checks the directories: absolute, clean, not "/" (that would allow
// the whole host), without ',' (Cloud Hypervisor splits its options on
// it). They need not exist yet: a directory created later is used from
// then on, since every Resolve resolves them again.
func New(dirs []string) (*Dirs, error) {
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w: at least one image directory is needed", ErrBadDir)
	}
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if err := vmspec.CheckHostPath("image directory", d); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadDir, err)
		}
		out = append(out, d)
	}
	return &Dirs{dirs: out}, nil
}

// List returns the directories as given.
func (d *Dirs) List() []string { return append([]string(nil), d.dirs...) }

// Resolve returns the real path of p (field names it in errors, e.g.
// "disk_image"): p with every symlink resolved, which is the file the
// caller must open, so a symlink swapped after the check changes nothing.
func (d *Dirs) Resolve(field, p string) (string, error) {
	if err := vmspec.CheckHostPath(field, p); err != nil {
		return "", fmt.Errorf("%w: %w", ErrOutside, err)
	}
	refuse := func() error {
		return fmt.Errorf("%s %q is %w (%s): put the file there, or start the agent with --image-dir naming its directory",
			field, p, ErrOutside, strings.Join(d.dirs, ", "))
	}
	// The path must name a file inside a directory as written, before the
	// file system is asked anything, so a refusal says nothing of what
	// exists elsewhere on the host.
	var resolvedDirs []string
	inside := false
	for _, dir := range d.dirs {
		rd, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue // absent for now
		}
		resolvedDirs = append(resolvedDirs, rd)
		inside = inside || within(p, dir) || within(p, rd)
	}
	if !inside {
		return "", refuse()
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", refuse()
	}
	st, err := os.Stat(real)
	if err != nil || !st.Mode().IsRegular() || strings.Contains(real, ",") {
		return "", refuse()
	}
	for _, rd := range resolvedDirs {
		if within(real, rd) {
			return real, nil
		}
	}
	return "", refuse()
}

// within: p lies strictly below dir (both clean and absolute).
func within(p, dir string) bool {
	if dir == "/" {
		return false
	}
	return strings.HasPrefix(p, dir+"/")
}
