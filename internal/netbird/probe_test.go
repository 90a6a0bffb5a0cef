package netbird

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProbeHTTP(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/teapot", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})

	for _, tc := range []struct {
		name    string
		probe   Probe
		ok      bool
		wantErr string
	}{
		{name: "in default range", probe: Probe{Type: ProbeHTTP, Target: srv.URL + "/ok"}, ok: true},
		{name: "below range", probe: Probe{Type: ProbeHTTP, Target: srv.URL + "/ok", HTTPMin: 205, HTTPMax: 299}, wantErr: "status 204 outside 205..299"},
		{name: "above default range", probe: Probe{Type: ProbeHTTP, Target: srv.URL + "/teapot"}, wantErr: "status 418 outside 200..399"},
		{name: "custom range accepts 418", probe: Probe{Type: ProbeHTTP, Target: srv.URL + "/teapot", HTTPMin: 400, HTTPMax: 499}, ok: true},
		{name: "redirect judged, not followed", probe: Probe{Type: ProbeHTTP, Target: srv.URL + "/redirect", HTTPMin: 300, HTTPMax: 399}, ok: true},
		{name: "timeout", probe: Probe{Type: ProbeHTTP, Target: srv.URL + "/slow", Timeout: 100 * time.Millisecond}, wantErr: "timed out after 100ms"},
		{name: "bad target", probe: Probe{Type: ProbeHTTP, Target: "ftp://x"}, wantErr: "not an http(s) URL"},
		{name: "bad range", probe: Probe{Type: ProbeHTTP, Target: srv.URL, HTTPMin: 300, HTTPMax: 200}, wantErr: "status range"},
		{name: "bad type", probe: Probe{Type: "icmp", Target: "127.0.0.1"}, wantErr: "probe type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := tc.probe.Run(context.Background())
			require.Equal(t, tc.ok, res.OK, res.Error)
			require.GreaterOrEqual(t, res.LatencyMS, 0.0)
			if tc.ok {
				require.Empty(t, res.Error)
				return
			}
			require.Contains(t, res.Error, tc.wantErr)
		})
	}
}

func TestProbePing(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		if c, err := ln.Accept(); err == nil {
			_ = c.Close()
		}
	}()

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	require.NoError(t, closed.Close())

	res := Probe{Type: ProbePing, Target: ln.Addr().String()}.Run(context.Background())
	require.True(t, res.OK, res.Error)
	<-accepted

	res = Probe{Type: ProbePing, Target: closedAddr}.Run(context.Background())
	require.False(t, res.OK)
	require.Contains(t, res.Error, "probing "+closedAddr)

	res = Probe{Type: ProbePing, Target: "127.0.0.1"}.Run(context.Background())
	require.False(t, res.OK)
	require.Contains(t, res.Error, "not host:port")
}
