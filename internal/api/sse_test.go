package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
)

func TestSSEFraming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		write   func(s *sseWriter) error
		want    string
		wantErr error
	}{
		{
			name:  "id, type and data",
			write: func(s *sseWriter) error { return s.Event("7", "vm.updated", []byte(`{"seq":7}`)) },
			want:  "id: 7\nevent: vm.updated\ndata: {\"seq\":7}\n\n",
		},
		{
			name:  "data only",
			write: func(s *sseWriter) error { return s.Event("", "", []byte("x")) },
			want:  "data: x\n\n",
		},
		{
			name:  "id and data",
			write: func(s *sseWriter) error { return s.Event("42", "", []byte(`{"line":"hi"}`)) },
			want:  "id: 42\ndata: {\"line\":\"hi\"}\n\n",
		},
		{
			name:  "empty data still dispatches",
			write: func(s *sseWriter) error { return s.Event("", "end", nil) },
			want:  "event: end\ndata: \n\n",
		},
		{
			name:  "multi-line data",
			write: func(s *sseWriter) error { return s.Event("1", "console", []byte("one\ntwo\n\nfour")) },
			want:  "id: 1\nevent: console\ndata: one\ndata: two\ndata: \ndata: four\n\n",
		},
		{
			name:  "CR and CRLF are line breaks too",
			write: func(s *sseWriter) error { return s.Event("", "", []byte("a\r\nb\rc")) },
			want:  "data: a\ndata: b\ndata: c\n\n",
		},
		{
			name:  "trailing newline gives an empty last line",
			write: func(s *sseWriter) error { return s.Event("", "", []byte("a\n")) },
			want:  "data: a\ndata: \n\n",
		},
		{
			name:  "comment",
			write: func(s *sseWriter) error { return s.Comment("keepalive") },
			want:  ": keepalive\n\n",
		},
		{
			name:  "multi-line comment",
			write: func(s *sseWriter) error { return s.Comment("a\nb") },
			want:  ": a\n: b\n\n",
		},
		{
			name: "events in a row",
			write: func(s *sseWriter) error {
				if err := s.Event("1", "", []byte("a")); err != nil {
					return err
				}
				return s.Event("2", "", []byte("b"))
			},
			want: "id: 1\ndata: a\n\nid: 2\ndata: b\n\n",
		},
		{
			name:    "newline in id",
			write:   func(s *sseWriter) error { return s.Event("1\ndata: forged", "", []byte("a")) },
			wantErr: errSSEField,
		},
		{
			name:    "carriage return in type",
			write:   func(s *sseWriter) error { return s.Event("1", "end\r", []byte("a")) },
			wantErr: errSSEField,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(rec)
			c.Request = httptest.NewRequest(http.MethodGet, "/stream", nil)
			s, err := newSSE(c)
			require.NoError(t, err)
			require.True(t, rec.Flushed, "the stream opens before the first event")
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, "text/event-stream", rec.Header().Get("Content-Type"))
			require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			require.Equal(t, "no", rec.Header().Get("X-Accel-Buffering"))

			err = tc.write(s)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.Empty(t, rec.Body.String(), "nothing of a refused event is written")
				return
			}
			require.NoError(t, err)
			require.NoError(t, s.Flush())
			require.Equal(t, tc.want, rec.Body.String())
		})
	}
}
