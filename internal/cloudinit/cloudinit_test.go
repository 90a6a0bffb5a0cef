package cloudinit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubedoio/n-kudo/internal/cloudinit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// isoImage is what the test reader finds in an image.
type isoImage struct {
	primaryLabel string
	jolietLabel  string
	totalSectors uint32
	primary      map[string][]byte
	joliet       map[string][]byte
	primaryOrder []string
}

// readISO parses an image independently of the writer, following
// ECMA-119 and the Joliet specification, and checks every invariant a
// kernel reader relies on.
func readISO(t *testing.T, img []byte) isoImage {
	t.Helper()
	const ss = cloudinit.SectorSize
	require.Zero(t, len(img)%ss, "image is not a whole number of sectors")
	require.Greater(t, len(img), 19*ss)
	sector := func(n uint32) []byte {
		require.LessOrEqual(t, int(n+1)*ss, len(img), "sector %d beyond image", n)
		return img[int(n)*ss : int(n+1)*ss]
	}
	both32 := func(b []byte) uint32 {
		le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		require.Equal(t, le, be, "both-endian field disagrees")
		return le
	}
	both16 := func(b []byte) uint16 {
		le, be := binary.LittleEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
		require.Equal(t, le, be, "both-endian field disagrees")
		return le
	}
	for i := range 16 * ss {
		require.Zero(t, img[i], "system area must be zero")
	}
	out := isoImage{primary: map[string][]byte{}, joliet: map[string][]byte{}}
	readDir := func(rootRec []byte, joliet bool) (map[string][]byte, []string) {
		require.Equal(t, byte(34), rootRec[0])
		require.Equal(t, byte(0x02), rootRec[25]&0x02, "root record must be a directory")
		extent, size := both32(rootRec[2:]), both32(rootRec[10:])
		require.Equal(t, uint32(ss), size)
		dir := sector(extent)
		files := map[string][]byte{}
		var order []string
		for off, i := 0, 0; off < len(dir) && dir[off] != 0; i++ {
			n := int(dir[off])
			require.Zero(t, n%2, "record length must be even")
			rec := dir[off : off+n]
			require.Equal(t, uint16(1), both16(rec[28:]))
			idLen := int(rec[32])
			id := rec[33 : 33+idLen]
			fe, fs := both32(rec[2:]), both32(rec[10:])
			switch i {
			case 0:
				require.Equal(t, []byte{0}, id, "first record is '.'")
				require.Equal(t, extent, fe)
			case 1:
				require.Equal(t, []byte{1}, id, "second record is '..'")
				require.Equal(t, extent, fe)
			default:
				require.Zero(t, rec[25]&0x02, "files only")
				name := string(id)
				if joliet {
					require.Zero(t, idLen%2)
					u := make([]uint16, idLen/2)
					for j := range u {
						u[j] = binary.BigEndian.Uint16(id[2*j:])
					}
					name = string(utf16.Decode(u))
				}
				start := int(fe) * ss
				require.LessOrEqual(t, start+int(fs), len(img))
				files[name] = img[start : start+int(fs)]
				order = append(order, name)
			}
			off += n
		}
		return files, order
	}
	pvd := sector(16)
	require.Equal(t, byte(1), pvd[0])
	require.Equal(t, "CD001", string(pvd[1:6]))
	require.Equal(t, byte(1), pvd[6])
	out.primaryLabel = strings.TrimRight(string(pvd[40:72]), " ")
	out.totalSectors = both32(pvd[80:])
	require.Equal(t, uint32(len(img)/ss), out.totalSectors, "volume space size")
	require.Equal(t, uint16(ss), both16(pvd[128:]))
	require.Equal(t, byte(1), pvd[881])
	// The path tables must name the root directory the PVD names.
	rootExtent := both32(pvd[156+2:])
	ptSize := both32(pvd[132:])
	lpt := sector(binary.LittleEndian.Uint32(pvd[140:]))[:ptSize]
	mpt := sector(binary.BigEndian.Uint32(pvd[148:]))[:ptSize]
	require.Equal(t, rootExtent, binary.LittleEndian.Uint32(lpt[2:]))
	require.Equal(t, rootExtent, binary.BigEndian.Uint32(mpt[2:]))
	out.primary, out.primaryOrder = readDir(pvd[156:190], false)

	svd := sector(17)
	require.Equal(t, byte(2), svd[0])
	require.Equal(t, "CD001", string(svd[1:6]))
	require.Equal(t, "%/E", string(svd[88:91]), "Joliet UCS-2 level 3 escape")
	u := make([]uint16, 16)
	for j := range u {
		u[j] = binary.BigEndian.Uint16(svd[40+2*j:])
	}
	out.jolietLabel = strings.TrimRight(string(utf16.Decode(u)), " ")
	require.Equal(t, out.totalSectors, both32(svd[80:]))
	out.joliet, _ = readDir(svd[156:190], true)

	term := sector(18)
	require.Equal(t, byte(255), term[0])
	require.Equal(t, "CD001", string(term[1:6]))
	return out
}

var testMAC = "52:54:00:AB:cd:01"

func TestBuildSeedReadsBack(t *testing.T) {
	t.Parallel()
	big := "#cloud-config\n" + strings.Repeat("# padding line to cross sector boundaries\n", 200)
	tests := []struct {
		name    string
		cfg     cloudinit.Config
		user    string
		network []string
	}{
		{
			name:    "dhcp and default user data",
			cfg:     cloudinit.Config{InstanceID: "0b6f6a3e-5d55-4c43-9a45-3f1f0a4f3f10", Hostname: "web-1", MAC: testMAC},
			user:    "#cloud-config\npreserve_hostname: false\nhostname: \"web-1\"\n",
			network: []string{`macaddress: "52:54:00:ab:cd:01"`, "dhcp4: true", "set-name: eth0"},
		},
		{
			name:    "given user data spanning sectors",
			cfg:     cloudinit.Config{InstanceID: "id-2", Hostname: "db", MAC: testMAC, UserData: big},
			user:    big,
			network: []string{"dhcp4: true"},
		},
		{
			name: "static address",
			cfg: cloudinit.Config{InstanceID: "id-3", Hostname: "edge", MAC: testMAC, UserData: "#!/bin/sh\necho hi\n",
				Static: &cloudinit.Static{Address: "10.0.0.5/24", Gateway: "10.0.0.1", DNS: []string{"1.1.1.1", "9.9.9.9"}}},
			user: "#!/bin/sh\necho hi\n",
			network: []string{"dhcp4: false", "addresses:\n      - \"10.0.0.5/24\"", "- to: default\n        via: \"10.0.0.1\"",
				"nameservers:\n      addresses:\n        - \"1.1.1.1\"\n        - \"9.9.9.9\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img, err := cloudinit.Build(tt.cfg)
			require.NoError(t, err)
			got := readISO(t, img)
			assert.Equal(t, "cidata", got.primaryLabel)
			assert.Equal(t, "cidata", got.jolietLabel)
			assert.Equal(t, []string{"meta-data", "network-config", "user-data"}, got.primaryOrder, "directory records sorted")
			assert.Equal(t, got.primary, got.joliet, "both trees name the same contents")
			meta := fmt.Sprintf("instance-id: %q\nlocal-hostname: %q\n", tt.cfg.InstanceID, tt.cfg.Hostname)
			assert.Equal(t, meta, string(got.joliet["meta-data"]))
			assert.Equal(t, tt.user, string(got.joliet["user-data"]))
			nc := string(got.joliet["network-config"])
			assert.True(t, strings.HasPrefix(nc, "version: 2\nethernets:\n  eth0:\n"), nc)
			for _, want := range tt.network {
				assert.Contains(t, nc, want)
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	t.Parallel()
	cfg := cloudinit.Config{InstanceID: "0b6f6a3e-5d55-4c43-9a45-3f1f0a4f3f10", Hostname: "web-1", MAC: testMAC}
	a, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	b, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	require.True(t, bytes.Equal(a, b))
	sum := sha256.Sum256(a)
	// Golden: a change here changes every seed on disk; make it on purpose.
	assert.Equal(t, "75c72d7de277dbbd74f3620bcd323ffaec899b73279c62062bc64f5f7e420a40", hex.EncodeToString(sum[:]))
	assert.Len(t, a, 28*cloudinit.SectorSize)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := cloudinit.Config{InstanceID: "id", Hostname: "h", MAC: testMAC}
	tests := []struct {
		name   string
		mutate func(*cloudinit.Config)
		want   string
	}{
		{"valid", func(*cloudinit.Config) {}, ""},
		{"no instance id", func(c *cloudinit.Config) { c.InstanceID = "" }, "instance id is required"},
		{"control char in id", func(c *cloudinit.Config) { c.InstanceID = "a\nb" }, "printable"},
		{"bad hostname", func(c *cloudinit.Config) { c.Hostname = "a_b" }, "hostname"},
		{"leading dash", func(c *cloudinit.Config) { c.Hostname = "-a" }, "hostname"},
		{"bad mac", func(c *cloudinit.Config) { c.MAC = "zz" }, "mac"},
		{"user data too big", func(c *cloudinit.Config) { c.UserData = strings.Repeat("x", cloudinit.MaxUserData+1) }, "user data"},
		{"bad static address", func(c *cloudinit.Config) { c.Static = &cloudinit.Static{Address: "10.0.0.5"} }, "CIDR"},
		{"gateway family", func(c *cloudinit.Config) { c.Static = &cloudinit.Static{Address: "10.0.0.5/24", Gateway: "fe80::1"} }, "family"},
		{"bad dns", func(c *cloudinit.Config) { c.Static = &cloudinit.Static{Address: "10.0.0.5/24", DNS: []string{"x"}} }, "dns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, cloudinit.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
			_, err = cloudinit.Build(c)
			require.ErrorIs(t, err, cloudinit.ErrInvalidConfig)
		})
	}
}

func TestWriteISORejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		label string
		files []cloudinit.File
	}{
		{"uppercase name", "cidata", []cloudinit.File{{Name: "META"}}},
		{"empty name", "cidata", []cloudinit.File{{Name: ""}}},
		{"long name", "cidata", []cloudinit.File{{Name: strings.Repeat("a", 65)}}},
		{"duplicate", "cidata", []cloudinit.File{{Name: "a"}, {Name: "a"}}},
		{"bad label", "CI DATA", nil},
		{"too many files", "cidata", func() []cloudinit.File {
			var fs []cloudinit.File
			for i := range 40 {
				fs = append(fs, cloudinit.File{Name: fmt.Sprintf("%s-%02d", strings.Repeat("f", 60), i)})
			}
			return fs
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			err := cloudinit.WriteISO(&buf, tt.label, tt.files)
			require.ErrorIs(t, err, cloudinit.ErrInvalidImage)
		})
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "seed.iso")
	cfg := cloudinit.Config{InstanceID: "id", Hostname: "h", MAC: testMAC}
	require.NoError(t, cloudinit.WriteFile(path, cfg))
	img, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := cloudinit.Build(cfg)
	require.NoError(t, err)
	assert.Equal(t, want, img)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "user data may hold secrets")

	err = cloudinit.WriteFile(filepath.Join(t.TempDir(), "seed.iso"), cloudinit.Config{})
	require.True(t, errors.Is(err, cloudinit.ErrInvalidConfig))
}

func TestHostname(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"web-1", "web-1"},
		{"my_vm.prod", "my-vm-prod"},
		{"__", "fallback"},
		{"-a-", "a"},
		{strings.Repeat("a", 62) + "_b", strings.Repeat("a", 62)},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, cloudinit.Hostname(tt.in, "fallback"), tt.in)
	}
}
