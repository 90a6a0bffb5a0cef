package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/pki"
	"github.com/kubedoio/n-kudo/internal/server"
)

// The container image has no shell and no curl, so its HEALTHCHECK (and a
// Kubernetes exec probe, where one is wanted) runs this subcommand of the
// binary that is already there. It reads the same environment as `serve`,
// so with no flags it probes the address the server listens on and trusts
// the CA the server wrote.
func newHealthcheckCmd() *cobra.Command {
	cfg, envErr := loadConfig()
	var (
		rawURL, caFile, path string
		timeout              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a running server's /readyz over HTTPS; exit 0 when it answers 200",
		Long: `Probe a running nkudo-server over HTTPS and exit 0 when it answers 200,
1 otherwise (with the reason on stderr). Made for container health checks,
where the image has no shell or curl.

Without --url the probe goes to the loopback address of --addr
(NKUDO_ADDR: 0.0.0.0:8443 is probed as 127.0.0.1:8443) and --path. The
server's certificate is verified against --ca-file, by default NKUDO_CA_CERT_FILE
or <data-dir>/pki/ca.crt (NKUDO_DATA_DIR), the CA the server writes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if envErr != nil {
				return envErr
			}
			target := rawURL
			if target == "" {
				u, err := probeURL(cfg.Addr, path)
				if err != nil {
					return err
				}
				target = u
			}
			if caFile == "" {
				caFile = defaultCAFile(cfg)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := probe(ctx, target, caFile); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok", target)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "the server's listen address, probed on loopback [NKUDO_ADDR]")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "the server's data dir, holding pki/ca.crt [NKUDO_DATA_DIR]")
	f.StringVar(&path, "path", "/readyz", "path to probe: /readyz (database reachable) or /healthz (process alive)")
	f.StringVar(&rawURL, "url", "", "full https URL to probe instead of --addr and --path")
	f.StringVar(&caFile, "ca-file", "", "CA certificate (PEM) to verify the server with; default NKUDO_CA_CERT_FILE (or the older CA_CERT_FILE) or <data-dir>/pki/ca.crt")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// probeURL turns a listen address into the https URL of path on the same
// port, replacing an unspecified host (every interface) with loopback: the
// probe runs beside the server, and the server certificate always names
// 127.0.0.1 and ::1.
func probeURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr (NKUDO_ADDR) %q is not host:port", addr)
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("--path %q must start with /", path)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.Equal(net.IPv4zero)):
		host = "127.0.0.1"
	case ip != nil && ip.Equal(net.IPv6unspecified):
		host = "::1"
	}
	return "https://" + net.JoinHostPort(host, port) + path, nil
}

// defaultCAFile is the CA the server trusts itself with: the operator's
// file when given, else the one `serve` writes into the data dir.
func defaultCAFile(cfg server.Config) string {
	if cfg.CACertFile != "" {
		return cfg.CACertFile
	}
	return filepath.Join(cfg.DataDir, "pki", pki.CACertFileName)
}

// probe GETs target, verifying the server against the CA in caFile, and
// reports any answer but 200 as an error.
func probe(ctx context.Context, target, caFile string) error {
	if !strings.HasPrefix(target, "https://") {
		return fmt.Errorf("probe URL %q must be https", target)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("reading CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("reading CA certificate %s: no PEM certificate in it", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", target, err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("probing %s: no answer in time: %w", target, err)
		}
		return fmt.Errorf("probing %s: %w", target, err)
	}
	defer resp.Body.Close()
	// The error body names the cause ("the database is unreachable");
	// a few hundred bytes of it are enough for a health log.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probing %s: %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
