package netbirdapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/kubedoio/n-kudo/internal/netbirdapi"
)

// Minting the setup key that goes with an enrollment token, and revoking
// it when the token is not stored after all. The server here stands in for NetBird
// on loopback.
func ExampleSetup() {
	var revoked atomic.Bool // written by the server goroutine
	netbird := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Token nbp_example" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		key := map[string]any{"id": "sk-1", "key": "A616097E-FCF0-48FA-9354-CA4A61142761", "name": "nkudo-berlin-tok-1",
			"type": "one-off", "auto_groups": []string{"grp-edge"}, "usage_limit": 1, "revoked": revoked.Load()}
		switch r.Method + " " + r.URL.Path {
		case "GET /api/groups":
			_ = json.NewEncoder(w).Encode([]map[string]any{{"id": "grp-edge", "name": "edge", "peers": []any{}, "resources": []any{}}})
		case "POST /api/setup-keys", "GET /api/setup-keys/sk-1":
			_ = json.NewEncoder(w).Encode(key)
		case "PUT /api/setup-keys/sk-1":
			revoked.Store(true)
			key["revoked"] = true
			_ = json.NewEncoder(w).Encode(key)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer netbird.Close()

	client, err := netbirdapi.New(netbirdapi.Options{BaseURL: netbird.URL, Token: "nbp_example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	setup, err := netbirdapi.NewSetup(client, netbirdapi.SetupOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	keyID, key, err := setup.MintForToken(ctx, netbirdapi.MintRequest{
		SiteName: "berlin", Groups: []string{"edge"}, TokenID: "tok-1", Uses: 1, ExpiresIn: 75 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("minted", keyID, "key length", len(key))
	if err := setup.RevokeForToken(ctx, keyID); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("revoked", revoked.Load())
	// Output:
	// minted sk-1 key length 36
	// revoked true
}
