package server

import (
	"fmt"
	"log/slog"

	"github.com/kubedoio/n-kudo/internal/mesh"
	"github.com/kubedoio/n-kudo/internal/netbirdapi"
	"github.com/kubedoio/n-kudo/internal/store"
)

// newMesh builds the NetBird integration from the configuration. The API
// token goes into the client and nowhere else: it is never logged.
func newMesh(cfg Config, st store.Store, log *slog.Logger) (*mesh.Mesh, error) {
	client, err := netbirdapi.New(netbirdapi.Options{
		BaseURL: cfg.NetBirdAPIURL,
		Token:   cfg.NetBirdAPIToken,
		Logger:  log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring netbird (NETBIRD_API_URL): %w", err)
	}
	m, err := mesh.New(mesh.Options{
		Client:        client,
		Store:         st,
		ManagementURL: cfg.ManagementURL(),
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring netbird: %w", err)
	}
	log.Info("netbird integration on", "api_url", cfg.NetBirdAPIURL, "management_url", cfg.ManagementURL())
	return m, nil
}
