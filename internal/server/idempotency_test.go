package server_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/internal/store/pgtest"
)

// TestIdempotencyAcrossReplicas sends one creating request many times at
// once with one Idempotency-Key, split over two replicas on one
// PostgreSQL database and over several API keys of the tenant, round
// after round: the store, not a replica's memory, decides, so exactly one
// API key is created per round and every success names it.
func TestIdempotencyAcrossReplicas(t *testing.T) {
	dbURL := pgtest.URL(t)
	dataDir := t.TempDir()
	replicas := []*replica{startReplica(t, dbURL, dataDir), startReplica(t, dbURL, dataDir)}
	caPEM, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	require.NoError(t, err)
	ctx := t.Context()

	admin := replicas[0].client(t, caPEM, adminKey, "")
	tenant, err := admin.CreateTenant(ctx, "idempotency")
	require.NoError(t, err)
	// Four admin keys of the tenant, each used on both replicas.
	var clients []*client.Client
	for i := range 4 {
		k, err := admin.CreateAPIKey(ctx, tenant.ID, fmt.Sprintf("racer-%d", i), "admin")
		require.NoError(t, err)
		for _, r := range replicas {
			clients = append(clients, r.client(t, caPEM, k.Key, ""))
		}
	}

	const rounds, racers = 20, 32
	for round := range rounds {
		name := fmt.Sprintf("race-%d", round)
		var mu sync.Mutex
		ids := map[string]int{}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				k, err := createRateLimited(t, clients[i%len(clients)], tenant.ID, name)
				var apiErr *client.APIError
				switch {
				case err == nil:
					mu.Lock()
					ids[k.ID.String()]++
					mu.Unlock()
				case errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict:
					// Still in progress after the wait: allowed, never a second object.
				default:
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		require.Len(t, ids, 1, "round %d: every success names one key: %v", round, ids)

		page, err := whileRateLimited(t, func() (client.Page[client.APIKey], error) {
			return admin.ListAPIKeys(ctx, tenant.ID, client.ListOptions{Limit: 500})
		})
		require.NoError(t, err)
		n := 0
		for _, k := range page.Items {
			if k.Name == name {
				n++
			}
		}
		require.Equal(t, 1, n, "round %d: one API key created", round)
	}
}

// createRateLimited creates the API key with the Idempotency-Key name.
func createRateLimited(t *testing.T, c *client.Client, tenant uuid.UUID, name string) (client.CreatedAPIKey, error) {
	t.Helper()
	return whileRateLimited(t, func() (client.CreatedAPIKey, error) {
		return c.CreateAPIKey(t.Context(), tenant, name, "viewer", client.WithIdempotencyKey(name))
	})
}

// whileRateLimited repeats a call the server refused with 429 (it never
// ran, so repeating a create with the same Idempotency-Key must still make
// one object), as a client honouring Retry-After would: on a quiet machine
// the rounds go faster than the per-address limit allows.
func whileRateLimited[T any](t *testing.T, call func() (T, error)) (T, error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := call()
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(100 * time.Millisecond) // back off as Retry-After asks
	}
}
