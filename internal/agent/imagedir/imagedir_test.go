package imagedir_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/agent/imagedir"
)

func TestNew(t *testing.T) {
	t.Parallel()
	for _, dirs := range [][]string{nil, {"images"}, {"/"}, {"/a/../b"}, {"/img,x"}, {"/ok", ""}} {
		_, err := imagedir.New(dirs)
		require.ErrorIs(t, err, imagedir.ErrBadDir, "%q", dirs)
	}
	d, err := imagedir.New([]string{"/var/lib/nkudo-agent/images", "/srv/images"})
	require.NoError(t, err)
	require.Equal(t, []string{"/var/lib/nkudo-agent/images", "/srv/images"}, d.List())
}

func TestResolve(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	images := filepath.Join(root, "images")
	linked := filepath.Join(root, "linked-images") // an image dir that is itself a symlink
	outside := filepath.Join(root, "secret")
	must := func(err error) { t.Helper(); require.NoError(t, err) }
	must(os.MkdirAll(filepath.Join(images, "sub"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "real-linked"), 0o755))
	must(os.Symlink(filepath.Join(root, "real-linked"), linked))
	must(os.WriteFile(outside, []byte("root:x:0:0"), 0o600))
	must(os.WriteFile(filepath.Join(images, "alpine.raw"), []byte("disk"), 0o600))
	must(os.WriteFile(filepath.Join(images, "sub", "vmlinux"), []byte("kernel"), 0o600))
	must(os.WriteFile(filepath.Join(root, "real-linked", "debian.raw"), []byte("disk"), 0o600))
	must(os.Symlink(outside, filepath.Join(images, "shadow.raw")))
	must(os.Symlink(filepath.Join(images, "alpine.raw"), filepath.Join(images, "current.raw")))
	must(os.Symlink("../secret", filepath.Join(images, "rel.raw")))
	must(os.Symlink(filepath.Join(root, "real-linked", "debian.raw"), filepath.Join(images, "cross.raw")))
	must(os.Mkdir(filepath.Join(images, "dir.raw"), 0o755))
	must(os.WriteFile(filepath.Join(images, "a,b.raw"), []byte("disk"), 0o600))
	must(os.Symlink(filepath.Join(images, "a,b.raw"), filepath.Join(images, "comma-target.raw")))

	d, err := imagedir.New([]string{images, linked, filepath.Join(root, "not-yet")})
	require.NoError(t, err)
	tests := []struct {
		name, path, want string // want "": refused
	}{
		{"file", filepath.Join(images, "alpine.raw"), filepath.Join(images, "alpine.raw")},
		{"file in a subdirectory", filepath.Join(images, "sub", "vmlinux"), filepath.Join(images, "sub", "vmlinux")},
		{"symlink inside to inside", filepath.Join(images, "current.raw"), filepath.Join(images, "alpine.raw")},
		{"symlink into another image dir", filepath.Join(images, "cross.raw"), filepath.Join(root, "real-linked", "debian.raw")},
		{"through a symlinked image dir", filepath.Join(linked, "debian.raw"), filepath.Join(root, "real-linked", "debian.raw")},
		{"by the real path of a symlinked dir", filepath.Join(root, "real-linked", "debian.raw"), filepath.Join(root, "real-linked", "debian.raw")},
		{"outside", outside, ""},
		{"etc shadow", "/etc/shadow", ""},
		{"symlink inside to outside", filepath.Join(images, "shadow.raw"), ""},
		{"relative symlink to outside", filepath.Join(images, "rel.raw"), ""},
		{"missing", filepath.Join(images, "missing.raw"), ""},
		{"directory", filepath.Join(images, "dir.raw"), ""},
		{"the image dir itself", images, ""},
		{"dot-dot", images + "/../secret", ""},
		{"relative", "images/alpine.raw", ""},
		{"comma", filepath.Join(images, "a,b.raw"), ""},
		{"symlink to a comma path", filepath.Join(images, "comma-target.raw"), ""},
		{"control character", filepath.Join(images, "a\nb"), ""},
		{"absent image dir", filepath.Join(root, "not-yet", "x.raw"), ""},
	}
	for _, tt := range tests {
		got, err := d.Resolve("disk_image", tt.path)
		if tt.want == "" {
			require.ErrorIs(t, err, imagedir.ErrOutside, tt.name)
			require.Contains(t, err.Error(), "disk_image", tt.name)
			if tt.name != "relative" && tt.name != "control character" && tt.name != "dot-dot" && tt.name != "comma" {
				require.Contains(t, err.Error(), images, "%s: the message names the allowed directories", tt.name)
			}
			continue
		}
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, got, tt.name)
	}
}
