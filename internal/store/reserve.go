package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// reserveAttempts bounds ReserveIdempotencyWith's retries when the record
// it lost to is released before it can be read.
const reserveAttempts = 5

// ReserveIdempotencyWith is the reservation protocol both engines share:
// insert tries the engine's insert-or-take-over statement and reports
// whether r now holds the key (the engine's unique key decides); on a loss
// the current record is read and returned. A record seen missing after a
// lost insert was released in between, so the insert is tried again, a
// bounded number of times.
func ReserveIdempotencyWith(ctx context.Context, s interface {
	GetIdempotency(ctx context.Context, tenantID uuid.UUID, route, key string) (IdempotencyRecord, error)
}, r IdempotencyRecord, insert func() (bool, error)) (IdempotencyRecord, bool, error) {
	for range reserveAttempts {
		won, err := insert()
		if err != nil {
			return IdempotencyRecord{}, false, fmt.Errorf("reserving idempotency key %s %q: %w", r.Route, r.Key, err)
		}
		if won {
			return r, true, nil
		}
		cur, err := s.GetIdempotency(ctx, r.TenantID, r.Route, r.Key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return IdempotencyRecord{}, false, fmt.Errorf("reserving idempotency key: %w", err)
		}
		return cur, false, nil
	}
	return IdempotencyRecord{}, false, fmt.Errorf("reserving idempotency key %s %q: %w: reserved and released too often", r.Route, r.Key, ErrConflict)
}
