package mesh

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	const secret = "nket_secret-of-the-token"
	tokenID := uuid.MustParse("0190c0de-0000-7000-8000-000000000001")
	otherID := uuid.MustParse("0190c0de-0000-7000-8000-000000000002")
	sealed, err := Seal(secret, tokenID, "A1B2C3-SETUP-KEY")
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "A1B2C3-SETUP-KEY", "the key is not stored in clear")

	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	wrongVersion := append([]byte(nil), sealed...)
	wrongVersion[0] ^= 0xff

	tests := []struct {
		name    string
		secret  string
		tokenID uuid.UUID
		sealed  []byte
		want    string
		wantErr bool
	}{
		{"round trip", secret, tokenID, sealed, "A1B2C3-SETUP-KEY", false},
		{"wrong secret", "nket_another", tokenID, sealed, "", true},
		{"another token's row", secret, otherID, sealed, "", true},
		{"tampered", secret, tokenID, tampered, "", true},
		{"unknown version", secret, tokenID, wrongVersion, "", true},
		{"truncated", secret, tokenID, sealed[:5], "", true},
		{"empty", secret, tokenID, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Open(tt.secret, tt.tokenID, tt.sealed)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrSealed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSealIsRandomized(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	a, err := Seal("s", id, "key")
	require.NoError(t, err)
	b, err := Seal("s", id, "key")
	require.NoError(t, err)
	require.NotEqual(t, a, b, "a fresh nonce per seal")
}

func TestReportedIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"prefix", `{"ip":"100.64.0.7/16"}`, "100.64.0.7"},
		{"bare", `{"ip":"100.64.0.8"}`, "100.64.0.8"},
		{"mapped v4", `{"ip":"::ffff:100.64.0.9"}`, "100.64.0.9"},
		{"missing", `{}`, ""},
		{"garbage", `{"ip":"nope"}`, ""},
		{"not json", `{`, ""},
		{"empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := reportedIP(json.RawMessage(tt.raw))
			if tt.want == "" {
				require.False(t, got.IsValid())
				return
			}
			require.Equal(t, netip.MustParseAddr(tt.want), got)
		})
	}
}

func TestFirstLabel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"edge-1.netbird.cloud": "edge-1", "edge-2": "edge-2", "": ""} {
		require.Equal(t, want, firstLabel(in))
	}
}
