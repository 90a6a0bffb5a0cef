package agentproto

import (
	"fmt"
	"math"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The helpers below return errors that wrap ErrInvalid and name the field,
// so a Validate method reads as a list of rules.

func checkID(field string, id uuid.UUID) error {
	if id == uuid.Nil {
		return fmt.Errorf("%s: missing id: %w", field, ErrInvalid)
	}
	return nil
}

// checkText checks a free-text field: valid UTF-8 (JSON cannot carry
// anything else faithfully) and at most max bytes.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, over %d: %w", field, len(s), max, ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8: %w", field, ErrInvalid)
	}
	return nil
}

func checkRequiredText(field, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s: missing: %w", field, ErrInvalid)
	}
	return checkText(field, s, max)
}

// checkName checks a short identifier (version, capability, code, stream):
// non-empty printable ASCII without spaces, so it is safe as a metric label
// or log key.
func checkName(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: missing: %w", field, ErrInvalid)
	}
	if len(s) > MaxNameBytes {
		return fmt.Errorf("%s: %d bytes, over %d: %w", field, len(s), MaxNameBytes, ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%s: byte %#x not allowed: %w", field, c, ErrInvalid)
		}
	}
	return nil
}

func checkOneOf(field, s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	if s == "" {
		return fmt.Errorf("%s: missing: %w", field, ErrInvalid)
	}
	return fmt.Errorf("%s: %.64q is not one of %q: %w", field, s, allowed, ErrInvalid)
}

func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%s: missing time: %w", field, ErrInvalid)
	}
	// Years outside 0..9999 cannot be written as RFC 3339, so such a time
	// could be sent but never decoded again.
	if y := t.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s: year %d out of range: %w", field, y, ErrInvalid)
	}
	return nil
}

func checkNonNegative(field string, v int64) error {
	if v < 0 {
		return fmt.Errorf("%s: %d is negative: %w", field, v, ErrInvalid)
	}
	return nil
}

func checkRatio(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("%s: %v is not a non-negative number: %w", field, v, ErrInvalid)
	}
	return nil
}

func checkCount(field string, n, max int) error {
	if n > max {
		return fmt.Errorf("%s: %d entries, over %d: %w", field, n, max, ErrInvalid)
	}
	return nil
}

// checkIP accepts an address or an address with prefix length, as NetBird
// reports its mesh IP ("100.64.0.7/16"); empty is allowed.
func checkIP(field, s string) error {
	if s == "" {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return nil
	}
	return fmt.Errorf("%s: %.64q is not an IP address: %w", field, s, ErrInvalid)
}
