package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateFirstStart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "pki")
	now := time.Now()
	a, err := LoadOrCreate(Options{
		Dir:          dir,
		ServerNames:  []string{"nkudo.example.com", "10.1.2.3", " ", "2001:db8::1"},
		CACommonName: "test CA",
		Now:          fixedClock(now),
	})
	require.NoError(t, err)

	modes := []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{filepath.Join(dir, CACertFileName), 0o644},
		{filepath.Join(dir, CAKeyFileName), 0o600},
		{filepath.Join(dir, ServerCertFileName), 0o644},
		{filepath.Join(dir, ServerKeyFileName), 0o600},
	}
	for _, m := range modes {
		fi, err := os.Stat(m.path)
		require.NoError(t, err)
		assert.Equal(t, m.mode, fi.Mode(), m.path)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 4, "no temporary files left behind")

	ca := readCertFile(t, filepath.Join(dir, CACertFileName))
	assert.True(t, ca.IsCA)
	assert.True(t, ca.BasicConstraintsValid)
	assert.Equal(t, 0, ca.MaxPathLen)
	assert.True(t, ca.MaxPathLenZero)
	assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, ca.KeyUsage)
	assert.Equal(t, "test CA", ca.Subject.CommonName)
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	require.True(t, ok)
	assert.Equal(t, elliptic.P256(), pub.Curve)
	assert.WithinDuration(t, now.AddDate(10, 0, 0), ca.NotAfter, time.Second)

	sum := sha256.Sum256(ca.Raw)
	assert.Equal(t, hex.EncodeToString(sum[:]), a.Fingerprint())
	assert.Len(t, a.Fingerprint(), 64)
	assert.Equal(t, strings.ToLower(a.Fingerprint()), a.Fingerprint())
	assert.Equal(t, filepath.Join(dir, CACertFileName), a.CACertPath())
	caFile, err := os.ReadFile(filepath.Join(dir, CACertFileName))
	require.NoError(t, err)
	assert.Equal(t, caFile, a.CACertPEM())

	leaf := a.ServerCertificate().Leaf
	require.NotNil(t, leaf)
	assert.WithinDuration(t, now.AddDate(1, 0, 0), leaf.NotAfter, time.Second)
	names := []string{"localhost", "127.0.0.1", "::1", "nkudo.example.com", "10.1.2.3", "2001:db8::1"}
	if h, err := os.Hostname(); err == nil && validDNSName(strings.ToLower(h)) {
		names = append(names, strings.ToLower(h))
	}
	for _, n := range names {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:     n,
			Roots:       a.CAPool(),
			CurrentTime: now,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		assert.NoError(t, err, "server certificate must verify for %s", n)
	}
}

func TestLoadOrCreateRestartKeepsCA(t *testing.T) {
	t.Parallel()
	first, dir := newTestAuthority(t, Options{ServerNames: []string{"a.example"}})
	second, err := LoadOrCreate(Options{Dir: dir, ServerNames: []string{"a.example"}})
	require.NoError(t, err)
	assert.Equal(t, first.Fingerprint(), second.Fingerprint())
	assert.Equal(t, first.CACertPEM(), second.CACertPEM())
	assert.Equal(t, first.ServerCertificate().Certificate, second.ServerCertificate().Certificate,
		"server certificate reused on restart")
}

func TestLoadOrCreateExplicitFiles(t *testing.T) {
	t.Parallel()
	ext, extDir := newTestAuthority(t, Options{})
	other, otherDir := newTestAuthority(t, Options{})
	caCert := filepath.Join(extDir, CACertFileName)
	caKey := filepath.Join(extDir, CAKeyFileName)
	srvCert := filepath.Join(extDir, ServerCertFileName)
	srvKey := filepath.Join(extDir, ServerKeyFileName)

	tests := []struct {
		name       string
		opts       func(dir string) Options
		wantErr    string
		wantFP     string
		wantServer [][]byte // nil: generated in dir
	}{
		{
			name:   "CA files win over Dir, server generated in Dir",
			opts:   func(dir string) Options { return Options{Dir: dir, CACertFile: caCert, CAKeyFile: caKey} },
			wantFP: ext.Fingerprint(),
		},
		{
			name: "all four files, no Dir",
			opts: func(string) Options {
				return Options{CACertFile: caCert, CAKeyFile: caKey, ServerCertFile: srvCert, ServerKeyFile: srvKey}
			},
			wantFP:     ext.Fingerprint(),
			wantServer: ext.ServerCertificate().Certificate,
		},
		{
			name: "all four files win over a Dir holding another CA",
			opts: func(string) Options {
				return Options{Dir: otherDir, CACertFile: caCert, CAKeyFile: caKey, ServerCertFile: srvCert, ServerKeyFile: srvKey}
			},
			wantFP:     ext.Fingerprint(),
			wantServer: ext.ServerCertificate().Certificate,
		},
		{
			name: "explicit server certificate from another CA",
			opts: func(string) Options {
				return Options{
					CACertFile: caCert, CAKeyFile: caKey,
					ServerCertFile: filepath.Join(otherDir, ServerCertFileName), ServerKeyFile: filepath.Join(otherDir, ServerKeyFileName),
				}
			},
			wantErr: "verifying server certificate " + filepath.Join(otherDir, ServerCertFileName),
		},
		{
			name:    "CA certificate without key file",
			opts:    func(dir string) Options { return Options{Dir: dir, CACertFile: caCert} },
			wantErr: "must be given together",
		},
		{
			name:    "server key without certificate file",
			opts:    func(dir string) Options { return Options{Dir: dir, ServerKeyFile: srvKey} },
			wantErr: "must be given together",
		},
		{
			name:    "no Dir and not all files",
			opts:    func(string) Options { return Options{CACertFile: caCert, CAKeyFile: caKey} },
			wantErr: "no PKI directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "pki")
			a, err := LoadOrCreate(tt.opts(dir))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantFP, a.Fingerprint())
			assert.NotEqual(t, other.Fingerprint(), a.Fingerprint())
			_, err = os.Stat(filepath.Join(dir, CACertFileName))
			assert.ErrorIs(t, err, fs.ErrNotExist, "no CA generated when CA files are given")
			if tt.wantServer != nil {
				assert.Equal(t, tt.wantServer, a.ServerCertificate().Certificate)
				return
			}
			leaf := readCertFile(t, filepath.Join(dir, ServerCertFileName))
			assert.Equal(t, a.ServerCertificate().Leaf.Raw, leaf.Raw)
			require.NoError(t, leaf.CheckSignatureFrom(ext.CACert()))
		})
	}
}

func TestRequirePersistent(t *testing.T) {
	t.Parallel()
	_, extDir := newTestAuthority(t, Options{})
	all := Options{
		CACertFile:     filepath.Join(extDir, CACertFileName),
		CAKeyFile:      filepath.Join(extDir, CAKeyFileName),
		ServerCertFile: filepath.Join(extDir, ServerCertFileName),
		ServerKeyFile:  filepath.Join(extDir, ServerKeyFileName),
	}
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{name: "no files", opts: Options{}, wantErr: true},
		{name: "CA files only", opts: Options{CACertFile: all.CACertFile, CAKeyFile: all.CAKeyFile}, wantErr: true},
		{name: "server files only", opts: Options{ServerCertFile: all.ServerCertFile, ServerKeyFile: all.ServerKeyFile}, wantErr: true},
		{name: "all files", opts: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "pki")
			opts := tt.opts
			opts.Dir = dir
			opts.RequirePersistent = true
			a, err := LoadOrCreate(opts)
			_, statErr := os.Stat(dir)
			assert.ErrorIs(t, statErr, fs.ErrNotExist, "nothing generated in Dir")
			if tt.wantErr {
				require.ErrorIs(t, err, ErrPersistentPKIRequired)
				return
			}
			require.NoError(t, err)
			assert.Len(t, a.Fingerprint(), 64)
		})
	}
}

func TestServerCertReissue(t *testing.T) {
	t.Parallel()
	base := time.Now()
	tests := []struct {
		name    string
		change  func(t *testing.T, dir string, opts *Options)
		reissue bool
	}{
		{name: "unchanged", change: func(*testing.T, string, *Options) {}},
		{
			name:   "same names in another case and order",
			change: func(_ *testing.T, _ string, o *Options) { o.ServerNames = []string{"B.example.", "a.example"} },
		},
		{
			name:    "missing DNS name",
			change:  func(_ *testing.T, _ string, o *Options) { o.ServerNames = append(o.ServerNames, "new.example.com") },
			reissue: true,
		},
		{
			name:    "missing IP address",
			change:  func(_ *testing.T, _ string, o *Options) { o.ServerNames = append(o.ServerNames, "192.0.2.7") },
			reissue: true,
		},
		{
			name: "31 days before expiry",
			change: func(_ *testing.T, _ string, o *Options) {
				o.Now = fixedClock(base.AddDate(1, 0, 0).Add(-31 * 24 * time.Hour))
			},
		},
		{
			name: "near expiry",
			change: func(_ *testing.T, _ string, o *Options) {
				o.Now = fixedClock(base.AddDate(1, 0, 0).Add(-29 * 24 * time.Hour))
			},
			reissue: true,
		},
		{
			name:    "expired",
			change:  func(_ *testing.T, _ string, o *Options) { o.Now = fixedClock(base.AddDate(2, 0, 0)) },
			reissue: true,
		},
		{
			name: "signed by another CA",
			change: func(t *testing.T, dir string, _ *Options) {
				_, otherDir := newTestAuthority(t, Options{})
				copyFile(t, filepath.Join(otherDir, CACertFileName), filepath.Join(dir, CACertFileName))
				copyFile(t, filepath.Join(otherDir, CAKeyFileName), filepath.Join(dir, CAKeyFileName))
			},
			reissue: true,
		},
		{
			name: "server key without certificate",
			change: func(t *testing.T, dir string, _ *Options) {
				require.NoError(t, os.Remove(filepath.Join(dir, ServerCertFileName)))
			},
			reissue: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := Options{Dir: filepath.Join(t.TempDir(), "pki"), ServerNames: []string{"a.example", "b.example"}, Now: fixedClock(base)}
			first, err := LoadOrCreate(opts)
			require.NoError(t, err)
			tt.change(t, opts.Dir, &opts)
			second, err := LoadOrCreate(opts)
			require.NoError(t, err)

			before := first.ServerCertificate().Leaf
			after := second.ServerCertificate().Leaf
			onDisk := readCertFile(t, filepath.Join(opts.Dir, ServerCertFileName))
			assert.Equal(t, after.Raw, onDisk.Raw, "server certificate persisted")
			if !tt.reissue {
				assert.Equal(t, before.Raw, after.Raw)
				return
			}
			assert.NotEqual(t, before.SerialNumber, after.SerialNumber)
			require.NoError(t, after.CheckSignatureFrom(second.CACert()))
			now := opts.Now()
			assert.WithinDuration(t, now.AddDate(1, 0, 0), after.NotAfter, time.Second)
			for _, n := range opts.ServerNames {
				_, err := after.Verify(x509.VerifyOptions{DNSName: n, Roots: second.CAPool(), CurrentTime: now})
				assert.NoError(t, err, n)
			}
			// The re-issued pair is consistent: a further restart reuses it.
			third, err := LoadOrCreate(opts)
			require.NoError(t, err)
			assert.Equal(t, after.Raw, third.ServerCertificate().Leaf.Raw)
		})
	}
}

func TestLoadOrCreateBadFiles(t *testing.T) {
	t.Parallel()
	_, otherDir := newTestAuthority(t, Options{})
	garbagePEM := []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name     string
		change   func(t *testing.T, dir string, opts *Options)
		wantIs   error
		wantPath []string // file names in dir the error must mention
		wantMsg  string
	}{
		{
			name: "garbage CA certificate",
			change: func(t *testing.T, dir string, _ *Options) {
				writeFile(t, filepath.Join(dir, CACertFileName), []byte("hello"))
			},
			wantIs:   ErrBadPEM,
			wantPath: []string{CACertFileName},
		},
		{
			name: "CA certificate block holding garbage",
			change: func(t *testing.T, dir string, _ *Options) {
				writeFile(t, filepath.Join(dir, CACertFileName), garbagePEM)
			},
			wantIs:   ErrBadPEM,
			wantPath: []string{CACertFileName},
		},
		{
			name: "garbage CA key",
			change: func(t *testing.T, dir string, _ *Options) {
				writeFile(t, filepath.Join(dir, CAKeyFileName), []byte("\x00\x01"))
			},
			wantIs:   ErrBadPEM,
			wantPath: []string{CAKeyFileName},
		},
		{
			name: "CA key in a certificate block",
			change: func(t *testing.T, dir string, _ *Options) {
				copyFile(t, filepath.Join(dir, CACertFileName), filepath.Join(dir, CAKeyFileName))
			},
			wantIs:   ErrBadPEM,
			wantPath: []string{CAKeyFileName},
		},
		{
			name: "mismatched CA pair",
			change: func(t *testing.T, dir string, _ *Options) {
				copyFile(t, filepath.Join(otherDir, CAKeyFileName), filepath.Join(dir, CAKeyFileName))
			},
			wantIs:   ErrKeyMismatch,
			wantPath: []string{CACertFileName, CAKeyFileName},
		},
		{
			name: "mismatched server pair",
			change: func(t *testing.T, dir string, _ *Options) {
				copyFile(t, filepath.Join(otherDir, ServerKeyFileName), filepath.Join(dir, ServerKeyFileName))
			},
			wantIs:   ErrKeyMismatch,
			wantPath: []string{ServerCertFileName, ServerKeyFileName},
		},
		{
			name: "garbage server certificate",
			change: func(t *testing.T, dir string, _ *Options) {
				writeFile(t, filepath.Join(dir, ServerCertFileName), garbagePEM)
			},
			wantIs:   ErrBadPEM,
			wantPath: []string{ServerCertFileName},
		},
		{
			name: "CA certificate without its key",
			change: func(t *testing.T, dir string, _ *Options) {
				require.NoError(t, os.Remove(filepath.Join(dir, CAKeyFileName)))
			},
			wantPath: []string{CACertFileName, CAKeyFileName},
			wantMsg:  "is missing",
		},
		{
			name: "explicit CA file missing",
			change: func(_ *testing.T, dir string, o *Options) {
				o.CACertFile = filepath.Join(dir, "nope.crt")
				o.CAKeyFile = filepath.Join(dir, CAKeyFileName)
			},
			wantIs:   fs.ErrNotExist,
			wantPath: []string{"nope.crt"},
		},
		{
			name: "explicit CA that is not a CA",
			change: func(_ *testing.T, dir string, o *Options) {
				o.CACertFile = filepath.Join(dir, ServerCertFileName)
				o.CAKeyFile = filepath.Join(dir, ServerKeyFileName)
			},
			wantPath: []string{ServerCertFileName},
			wantMsg:  "not a CA",
		},
		{
			name:    "CA expired",
			change:  func(_ *testing.T, _ string, o *Options) { o.Now = fixedClock(time.Now().AddDate(11, 0, 0)) },
			wantMsg: "expired",
		},
		{
			name:    "invalid server name",
			change:  func(_ *testing.T, _ string, o *Options) { o.ServerNames = []string{"bad name!"} },
			wantMsg: `server name "bad name!"`,
		},
		{
			name:    "server name with a port",
			change:  func(_ *testing.T, _ string, o *Options) { o.ServerNames = []string{"example.com:8443"} },
			wantMsg: "neither an IP address nor a valid DNS name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, dir := newTestAuthority(t, Options{})
			opts := Options{Dir: dir}
			tt.change(t, dir, &opts)
			_, err := LoadOrCreate(opts)
			require.Error(t, err)
			if tt.wantIs != nil {
				assert.ErrorIs(t, err, tt.wantIs)
			}
			for _, name := range tt.wantPath {
				assert.Contains(t, err.Error(), filepath.Join(dir, name))
			}
			assert.Contains(t, err.Error(), tt.wantMsg)
		})
	}
}

func TestLoadOrCreateCAKeyWithoutCertificate(t *testing.T) {
	t.Parallel()
	// The state a crash between writing ca.key and ca.crt leaves behind.
	first, dir := newTestAuthority(t, Options{})
	require.NoError(t, os.Remove(filepath.Join(dir, CACertFileName)))
	second, err := LoadOrCreate(Options{Dir: dir})
	require.NoError(t, err)
	assert.True(t, first.CACert().PublicKey.(*ecdsa.PublicKey).Equal(second.CACert().PublicKey),
		"the existing CA key is kept")
	assert.NotEqual(t, first.Fingerprint(), second.Fingerprint())
	require.NoError(t, second.ServerCertificate().Leaf.CheckSignatureFrom(second.CACert()))
}

func TestServerTLSConfig(t *testing.T) {
	t.Parallel()
	a, _ := newTestAuthority(t, Options{})
	cfg := a.ServerTLSConfig()
	assert.Equal(t, uint16(0x0304), cfg.MinVersion)
	assert.Equal(t, []string{"http/1.1"}, cfg.NextProtos)
	require.Len(t, cfg.Certificates, 1)
	// The handshake carries the leaf then the CA, so a client pinning only
	// the CA fingerprint can find and check the CA.
	chain := cfg.Certificates[0].Certificate
	require.Len(t, chain, 2)
	assert.Equal(t, a.ServerCertificate().Certificate[0], chain[0])
	assert.Equal(t, a.CACert().Raw, chain[1])
	assert.Len(t, a.ServerCertificate().Certificate, 1, "the stored certificate is not modified")
	// Each call returns an independent config: callers may mutate theirs.
	cfg.NextProtos = append(cfg.NextProtos, "h2")
	assert.Equal(t, []string{"http/1.1"}, a.ServerTLSConfig().NextProtos)
}

func TestValidDNSName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"localhost", true},
		{"a.example.com", true},
		{"*.example.com", true},
		{"xn--bcher-kva.example", true},
		{"", false},
		{"-a.example", false},
		{"a-.example", false},
		{"a..example", false},
		{"a_b.example", false},
		{"a.*.example", false},
		{strings.Repeat("a", 64) + ".example", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, validDNSName(tt.in), tt.in)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
}
