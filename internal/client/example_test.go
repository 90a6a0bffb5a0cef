package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/server"
)

// exampleServer runs a real nkudo-server on loopback for the examples
// and returns its URL, its CA and a function that stops it.
func exampleServer() (url string, ca []byte, stop func()) {
	dir, err := os.MkdirTemp("", "nkudo-example-")
	if err != nil {
		log.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.Addr, cfg.MetricsAddr = dir, "127.0.0.1:0", ""
	cfg.AdminKey = "example-admin-key-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx)
	}()
	ca, err = os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		log.Fatal(err)
	}
	return "https://" + srv.Addr().String(), ca, func() {
		cancel()
		<-done
		_ = os.RemoveAll(dir)
	}
}

// Bootstrap a tenant with the admin key, then work as that tenant with
// its own operator key.
func Example() {
	url, ca, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	admin, err := client.New(client.Config{BaseURL: url, CAPEM: ca, APIKey: "example-admin-key-0123456789"})
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	tenant, err := admin.CreateTenant(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	key, err := admin.CreateAPIKey(ctx, tenant.ID, "ci", client.RoleOperator)
	if err != nil {
		log.Fatal(err)
	}

	c, err := client.New(client.Config{BaseURL: url, CAPEM: ca, APIKey: key.Key})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{"fra1", "ams1"} {
		if _, err := c.CreateSite(ctx, client.CreateSiteRequest{Name: name}); err != nil {
			log.Fatal(err)
		}
	}
	// AllSites follows next_cursor for as many pages as there are.
	for site, err := range c.AllSites(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(site.Name)
	}
	// Output:
	// fra1
	// ams1
}

// Errors are *APIError values that errors.Is matches against the
// package's sentinels.
func ExampleIsNotFound() {
	url, ca, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	admin, err := client.New(client.Config{BaseURL: url, CAPEM: ca, APIKey: "example-admin-key-0123456789"})
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	tenant, err := admin.CreateTenant(ctx, "acme")
	if err != nil {
		log.Fatal(err)
	}
	// The admin key acts on the tenant it names.
	c, err := client.New(client.Config{BaseURL: url, CAPEM: ca, APIKey: "example-admin-key-0123456789", Tenant: tenant.ID.String()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetSite(ctx, tenant.ID) // not a site id
	fmt.Println(client.IsNotFound(err))
	// Output: true
}
