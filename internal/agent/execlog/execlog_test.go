package execlog

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seqs(batches []batchView) []int64 {
	var out []int64
	for _, b := range batches {
		out = append(out, b.seqs...)
	}
	return out
}

type batchView struct {
	exec uuid.UUID
	seqs []int64
}

func view(b *Buffer, sent map[uuid.UUID]int64) []batchView {
	var out []batchView
	for _, lb := range b.Batches(sent, 0, 0) {
		v := batchView{exec: lb.ExecutionID}
		for _, l := range lb.Lines {
			v.seqs = append(v.seqs, l.Seq)
		}
		out = append(out, v)
	}
	return out
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "logs.json")
	b, err := Open(path, 0)
	require.NoError(t, err)
	e1, e2 := uuid.New(), uuid.New()
	now := time.Now()
	b.Append(e1, "system", "one", now)
	b.Append(e1, "system", "two", now)
	assert.Empty(t, view(b, map[uuid.UUID]int64{}), "lines are not sendable before Flush")
	require.NoError(t, b.Flush())
	b.Append(e2, "stderr", "other", now)
	b.Append(e1, "system", "three", now)
	assert.Equal(t, []int64{1, 2}, seqs(view(b, map[uuid.UUID]int64{})))
	require.NoError(t, b.Flush())

	sent := map[uuid.UUID]int64{}
	got := view(b, sent)
	require.Len(t, got, 2)
	assert.Equal(t, batchView{e1, []int64{1, 2, 3}}, got[0], "numbered per execution")
	assert.Equal(t, batchView{e2, []int64{1}}, got[1])
	assert.Empty(t, view(b, sent), "a session does not resend what it sent")

	b.Ack(e1, 2)
	assert.Equal(t, 2, b.Len())
	require.NoError(t, b.Flush())

	// After a restart the unacknowledged lines come back, and numbering
	// continues where it stopped.
	b2, err := Open(path, 0)
	require.NoError(t, err)
	got = view(b2, map[uuid.UUID]int64{})
	require.Len(t, got, 2)
	assert.Equal(t, batchView{e2, []int64{1}}, got[0], "executions in the order of their oldest pending line")
	assert.Equal(t, batchView{e1, []int64{3}}, got[1])
	b2.Append(e1, "system", "four", now)
	require.NoError(t, b2.Flush())
	assert.Equal(t, []int64{1, 3, 4}, seqs(view(b2, map[uuid.UUID]int64{})))
}

func TestBufferBound(t *testing.T) {
	t.Parallel()
	b, err := Open(filepath.Join(t.TempDir(), "logs.json"), 3)
	require.NoError(t, err)
	e := uuid.New()
	for range 5 {
		b.Append(e, "system", "x", time.Now())
	}
	require.NoError(t, b.Flush())
	assert.Equal(t, 3, b.Len())
	assert.Equal(t, int64(2), b.Dropped())
	assert.Equal(t, []int64{3, 4, 5}, seqs(view(b, map[uuid.UUID]int64{})))
}
