package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kubedoio/n-kudo/internal/agent/enroll"
	"github.com/kubedoio/n-kudo/internal/agent/identity"
)

// Clock skew bounds: certificates are checked against the clock, and a
// skew of minutes makes fresh ones "not yet valid".
const (
	skewWarn = 10 * time.Second
	skewFail = 5 * time.Minute
)

// serverTarget is the server to check and how to trust it.
type serverTarget struct {
	url, how string
	tls      *tls.Config
}

// target picks the enrolled identity's server and CA, else the flags;
// ok false (with a skip reason) when there is neither.
func target(o Options) (serverTarget, string, error) {
	if o.StateDir != "" {
		if exists, err := identity.Exists(o.StateDir); err == nil && exists && o.Server == "" {
			id, err := identity.Load(o.StateDir)
			if err != nil {
				return serverTarget{}, "", fmt.Errorf("reading the agent's identity: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(id.CAPEM) {
				return serverTarget{}, "", fmt.Errorf("the identity in %s holds no CA certificate", o.StateDir)
			}
			return serverTarget{url: id.Info.Server, how: "the CA pinned at enrollment",
				tls: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}, "", nil
		}
	}
	if o.Server == "" {
		return serverTarget{}, "not enrolled and no --server given", nil
	}
	if o.CAFile == "" && o.CAFingerprint == "" {
		return serverTarget{}, "", fmt.Errorf("--server needs --ca-fingerprint (or --ca-file) to be trusted")
	}
	conf, err := enroll.TrustConfig(o.CAFile, o.CAFingerprint)
	if err != nil {
		return serverTarget{}, "", err
	}
	return serverTarget{url: o.Server, how: "the given CA", tls: conf}, "", nil
}

// checkServer reaches GET /healthz with the pinned CA and compares the
// answer's Date with the local clock.
func checkServer(ctx context.Context, o Options) []Result {
	srv := Result{Check: CheckServer}
	clock := Result{Check: CheckClock, Status: StatusSkip, Detail: "needs the server"}
	t, skip, err := target(o)
	switch {
	case err != nil:
		srv.Status, srv.Detail = StatusFail, err.Error()
		srv.Fix = "pass --server https://HOST:PORT with --ca-fingerprint SHA256 as nkudo-server prints it"
		return []Result{srv, clock}
	case skip != "":
		srv.Status, srv.Detail = StatusSkip, skip
		return []Result{srv, clock}
	}
	cli := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{TLSClientConfig: t.tls, Proxy: http.ProxyFromEnvironment}}
	defer cli.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(t.url, "/")+"/healthz", nil)
	if err != nil {
		srv.Status, srv.Detail, srv.Fix = StatusFail, fmt.Sprintf("bad server URL %q: %v", t.url, err), "pass --server https://HOST:PORT"
		return []Result{srv, clock}
	}
	sent := o.Now()
	resp, err := cli.Do(req)
	if err != nil {
		srv.Status, srv.Detail = StatusFail, fmt.Sprintf("%s unreachable with %s: %v", t.url, t.how, err)
		srv.Fix = "check the server address, the firewall, and that --ca-fingerprint is the one nkudo-server prints"
		return []Result{srv, clock}
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		srv.Status, srv.Detail = StatusFail, fmt.Sprintf("%s/healthz answered %s", t.url, resp.Status)
		srv.Fix = "check that the URL names nkudo-server"
		return []Result{srv, clock}
	}
	srv.Status, srv.Detail = StatusOK, fmt.Sprintf("%s reachable, verified with %s", t.url, t.how)
	return []Result{srv, checkClock(resp.Header, sent, o.Now())}
}

// checkClock compares the server's Date (whole seconds, stamped between
// sent and received) with the local clock.
func checkClock(h http.Header, sent, received time.Time) Result {
	res := Result{Check: CheckClock}
	date, ok := httpDate(h)
	if !ok {
		res.Status, res.Detail = StatusWarn, "the server sent no Date header"
		res.Fix = "run NTP (systemd-timesyncd or chrony) on this host"
		return res
	}
	// Date is truncated to the second: anything within [sent-1s,
	// received] is no skew at all.
	var skew time.Duration
	switch {
	case date.Before(sent.Add(-time.Second)):
		skew = sent.Add(-time.Second).Sub(date)
	case date.After(received):
		skew = date.Sub(received)
	}
	res.Status, res.Detail = StatusOK, fmt.Sprintf("within %s of the server", skew.Round(time.Second)+time.Second)
	if skew > skewWarn {
		res.Status = StatusWarn
		res.Detail = fmt.Sprintf("%s off the server's clock", skew.Round(time.Second))
		res.Fix = "run NTP (systemd-timesyncd or chrony) on this host"
	}
	if skew > skewFail {
		res.Status = StatusFail
	}
	return res
}
