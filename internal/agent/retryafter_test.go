package agent

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryAfterParsing(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		header string
		want   time.Duration
	}{
		{name: "seconds on 503", status: http.StatusServiceUnavailable, header: "7", want: 7 * time.Second},
		{name: "seconds on 429", status: http.StatusTooManyRequests, header: " 2 ", want: 2 * time.Second},
		{name: "http date", status: http.StatusServiceUnavailable, header: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second},
		{name: "date in the past", status: http.StatusServiceUnavailable, header: now.Add(-time.Minute).Format(http.TimeFormat), want: 0},
		{name: "capped", status: http.StatusServiceUnavailable, header: "86400", want: maxRetryAfter},
		{name: "huge number capped", status: http.StatusServiceUnavailable, header: "9223372036854775807", want: maxRetryAfter},
		{name: "zero", status: http.StatusServiceUnavailable, header: "0", want: 0},
		{name: "negative", status: http.StatusServiceUnavailable, header: "-5", want: 0},
		{name: "garbage", status: http.StatusServiceUnavailable, header: "soon", want: 0},
		{name: "missing", status: http.StatusServiceUnavailable, want: 0},
		{name: "other status", status: http.StatusUnauthorized, header: "5", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			if tt.header != "" {
				resp.Header.Set("Retry-After", tt.header)
			}
			assert.Equal(t, tt.want, retryAfter(resp, now))
		})
	}
}
