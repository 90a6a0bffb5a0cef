package client

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSSEDecoder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []sseEvent
		wantErr error // after the events
	}{
		{"one event", "id: 7\nevent: vm.updated\ndata: {\"seq\":7}\n\n",
			[]sseEvent{{ID: "7", HasID: true, Type: "vm.updated", Data: []byte(`{"seq":7}`)}}, io.EOF},
		{"keepalive comments are skipped", ": keepalive\n\n: keepalive\n\ndata: x\n\n",
			[]sseEvent{{Data: []byte("x")}}, io.EOF},
		{"multi-line data joined with newlines", "data: a\ndata: b\n\n",
			[]sseEvent{{Data: []byte("a\nb")}}, io.EOF},
		{"crlf line endings", "id: 1\r\ndata: x\r\n\r\n",
			[]sseEvent{{ID: "1", HasID: true, Data: []byte("x")}}, io.EOF},
		{"no space after colon", "data:x\n\n", []sseEvent{{Data: []byte("x")}}, io.EOF},
		{"event without data", "event: end\n\n", []sseEvent{{Type: "end", Data: []byte{}}}, io.EOF},
		{"id-only block", "id: 9\n\n", []sseEvent{{ID: "9", HasID: true}}, io.EOF},
		{"unknown fields and retry ignored", "retry: 10\nfoo: bar\ndata: x\n\n", []sseEvent{{Data: []byte("x")}}, io.EOF},
		{"cut inside an event", "data: x\n\ndata: y\n", []sseEvent{{Data: []byte("x")}}, io.ErrUnexpectedEOF},
		{"empty stream", "", nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lines := 0
			d := newSSEDecoder(strings.NewReader(tt.in), func() { lines++ })
			var got []sseEvent
			var err error
			for {
				var ev sseEvent
				ev, err = d.Next()
				if err != nil {
					break
				}
				got = append(got, ev)
			}
			require.ErrorIs(t, err, tt.wantErr)
			require.Len(t, got, len(tt.want))
			for i := range tt.want {
				require.Equal(t, tt.want[i].ID, got[i].ID)
				require.Equal(t, tt.want[i].HasID, got[i].HasID)
				require.Equal(t, tt.want[i].Type, got[i].Type)
				require.Equal(t, string(tt.want[i].Data), string(got[i].Data))
			}
			require.Equal(t, strings.Count(strings.ReplaceAll(tt.in, "\r\n", "\n"), "\n"), lines, "every line pokes the watchdog")
		})
	}
}

func TestSSEDecoderBounds(t *testing.T) {
	t.Parallel()
	long := "data: " + strings.Repeat("x", maxSSELine+1) + "\n\n"
	_, err := newSSEDecoder(strings.NewReader(long), nil).Next()
	require.Error(t, err)

	var b strings.Builder
	chunk := "data: " + strings.Repeat("y", maxSSELine/2) + "\n"
	for b.Len() <= maxSSEEvent {
		b.WriteString(chunk)
	}
	_, err = newSSEDecoder(strings.NewReader(b.String()), nil).Next()
	require.True(t, errors.Is(err, ErrInvalidResponse), "got %v", err)
}
