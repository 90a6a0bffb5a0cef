package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// TestClassifyStoreErrors pins the one mapping from store sentinels (as
// the engines wrap them) to HTTP statuses and codes.
func TestClassifyStoreErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("getting site: %w", store.ErrNotFound), http.StatusNotFound, CodeNotFound},
		{fmt.Errorf("creating site: %w", store.ErrConflict), http.StatusConflict, CodeConflict},
		{fmt.Errorf("replaying: %w", store.ErrIdempotencyMismatch), http.StatusUnprocessableEntity, CodeIdempotencyMismatch},
		{fmt.Errorf("writing facts: %w", store.ErrInvalid), http.StatusBadRequest, CodeInvalidArgument},
		{fmt.Errorf("pinging: %w", store.ErrUnavailable), http.StatusServiceUnavailable, CodeUnavailable},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, CodeUnavailable},
		{errors.New("boom"), http.StatusInternalServerError, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			t.Parallel()
			e := classify(tt.err)
			require.Equal(t, tt.status, e.Status)
			require.Equal(t, tt.code, e.Code)
		})
	}
}
