package server

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubedoio/n-kudo/internal/mesh"
	"github.com/kubedoio/n-kudo/internal/netbirdapi"
	"github.com/kubedoio/n-kudo/internal/store"
)

// newMesh builds the NetBird integration from the configuration. The API
// token goes into the client and nowhere else: it is never logged. The
// token's state is exported on reg (nkudo_netbird_api_token_ok) and shown
// in /readyz.
func newMesh(cfg Config, st store.Store, log *slog.Logger, reg prometheus.Registerer) (*mesh.Mesh, error) {
	client, err := netbirdapi.New(netbirdapi.Options{
		BaseURL: cfg.NetBirdAPIURL,
		Token:   cfg.NetBirdAPIToken,
		Logger:  log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring netbird (NKUDO_NETBIRD_API_URL): %w", err)
	}
	m, err := mesh.New(mesh.Options{
		Client:        client,
		Store:         st,
		ManagementURL: cfg.ManagementURL(),
		Logger:        log,
		Registerer:    reg,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring netbird: %w", err)
	}
	log.Info("netbird integration on", "api_url", cfg.NetBirdAPIURL, "management_url", cfg.ManagementURL())
	return m, nil
}
