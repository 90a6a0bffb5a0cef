package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/internal/store"
)

// The ingest paths: enrollment as one write (token read, then consume +
// agent + host + audit atomically) and multi-row log appends.

func testEnrollmentTokenByHash(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	tok := f.token(site, 1, base.Add(time.Hour))
	used := f.token(site, 1, base.Add(time.Hour))
	_, _, _, err := f.s.ConsumeEnrollment(f.ctx, f.enrollment(used))
	require.NoError(t, err)
	expired := f.token(site, 1, base.Add(-time.Second))

	want := tok
	want.ExpiresAt, want.CreatedAt = ts(tok.ExpiresAt), ts(tok.CreatedAt)
	tests := []struct {
		name    string
		hash    []byte
		now     time.Time
		want    store.EnrollmentToken
		wantErr error
	}{
		{name: "usable", hash: tok.Hash, now: base, want: want},
		{name: "unknown", hash: hash("never issued"), now: base, wantErr: store.ErrTokenInvalid},
		{name: "expired", hash: expired.Hash, now: base, wantErr: store.ErrTokenInvalid},
		{name: "expiring at now", hash: tok.Hash, now: tok.ExpiresAt, wantErr: store.ErrTokenInvalid},
		{name: "used up", hash: used.Hash, now: base, wantErr: store.ErrTokenInvalid},
	}
	for _, tc := range tests {
		got, err := f.s.EnrollmentTokenByHash(f.ctx, tc.hash, tc.now)
		if tc.wantErr != nil {
			require.ErrorIs(t, err, tc.wantErr, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}

	// Reading is not using: the one-use token read above (twice) still
	// enrolls exactly once.
	_, err = f.s.EnrollmentTokenByHash(f.ctx, tok.Hash, base)
	require.NoError(t, err)
	_, _, _, err = f.s.ConsumeEnrollment(f.ctx, f.enrollment(tok))
	require.NoError(t, err, "a read token is still usable")
	_, err = f.s.EnrollmentTokenByHash(f.ctx, tok.Hash, base)
	require.ErrorIs(t, err, store.ErrTokenInvalid, "after its only use")
}

func testEnrollmentAudit(t *testing.T, f *fixture) {
	ten := f.tenant()
	site := f.site(ten.ID)
	tok := f.token(site, 2, base.Add(time.Hour))
	audit := func(e store.Enrollment) *store.AuditEvent {
		return &store.AuditEvent{ID: store.NewID(), Actor: "token:" + tok.ID.String(), Action: "agent.enroll",
			Target: e.AgentID.String(), Result: "ok", RequestID: "req-" + e.Hostname, At: base}
	}

	e := f.enrollment(tok)
	e.Audit = audit(e)
	agent, _, _, err := f.s.ConsumeEnrollment(f.ctx, e)
	require.NoError(t, err)
	require.Equal(t, e.CertSerial, agent.CertSerial, "the certificate is recorded with the agent")
	wantEv := *e.Audit
	wantEv.TenantID, wantEv.At = ten.ID, ts(wantEv.At)
	got, _, err := f.s.ListAudit(f.ctx, ten.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []store.AuditEvent{wantEv}, got, "the event is recorded in the token's tenant")

	tests := []struct {
		name    string
		mutate  func(e *store.Enrollment)
		wantErr error
	}{
		{
			name:    "a refused token records no event",
			mutate:  func(e *store.Enrollment) { e.TokenHash = hash("never issued") },
			wantErr: store.ErrTokenInvalid,
		},
		{
			// The event fails, so the whole enrollment must: no agent, no
			// host, and the token use is not spent.
			name:    "a failing event writes nothing",
			mutate:  func(e *store.Enrollment) { e.Audit.ID = wantEv.ID },
			wantErr: store.ErrConflict,
		},
	}
	for _, tc := range tests {
		e := f.enrollment(tok)
		e.Audit = audit(e)
		tc.mutate(&e)
		_, _, _, err := f.s.ConsumeEnrollment(f.ctx, e)
		require.ErrorIs(t, err, tc.wantErr, tc.name)
		_, err = f.s.GetAgent(f.ctx, e.AgentID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: no agent", tc.name)
		_, err = f.s.GetHost(f.ctx, ten.ID, e.HostID)
		require.ErrorIs(t, err, store.ErrNotFound, "%s: no host", tc.name)
		got, _, err := f.s.ListAudit(f.ctx, ten.ID, store.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, got, 1, "%s: no new event", tc.name)
	}

	read, err := f.s.EnrollmentTokenByHash(f.ctx, tok.Hash, base)
	require.NoError(t, err)
	require.Equal(t, 1, read.Uses, "failed enrollments spend no use")
	e = f.enrollment(tok)
	_, _, _, err = f.s.ConsumeEnrollment(f.ctx, e)
	require.NoError(t, err, "an enrollment without an event")
	got, _, err = f.s.ListAudit(f.ctx, ten.ID, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, got, 1, "no event asked, none written")
}

// testLogLinesBulk covers batches bigger than any engine's statement
// chunk: several executions in one call, retries overlapping chunk
// boundaries, and a batch that fails half way writing nothing.
func testLogLinesBulk(t *testing.T, f *fixture) {
	sc := newScope(f)
	p := f.plan(sc.agent)
	execA, execB := p.Actions[0].ExecutionID, f.plan(sc.agent).Actions[0].ExecutionID
	message := func(exec uuid.UUID, seq int64) string { return fmt.Sprintf("%s line %d", exec, seq) }
	lines := func(exec uuid.UUID, from, to int64) []store.LogLine {
		var out []store.LogLine
		for s := from; s <= to; s++ {
			out = append(out, store.LogLine{ExecutionID: exec, Seq: s, At: base.Add(time.Duration(s) * time.Microsecond),
				Stream: "stdout", Message: message(exec, s)})
		}
		return out
	}
	a, b := execA, execB

	// 1,234 lines of A then 777 of B: partial and full chunks of any size
	// up to a thousand or so.
	first := append(lines(a, 1, 1234), lines(b, 1, 777)...)
	require.NoError(t, f.s.AppendLogLines(f.ctx, first))
	// A retry overlapping everything from the middle of A on, with new
	// lines at the end of both; overlapping lines keep their first text.
	retry := append(lines(a, 600, 1500), lines(b, 1, 800)...)
	for i := range retry {
		retry[i].Message = "retried"
	}
	require.NoError(t, f.s.AppendLogLines(f.ctx, retry))

	// An unknown execution in the middle of a big batch fails it whole.
	bad := lines(a, 1501, 2400)
	bad[700].ExecutionID = store.NewID()
	require.ErrorIs(t, f.s.AppendLogLines(f.ctx, bad), store.ErrNotFound)

	tests := []struct {
		name      string
		exec      uuid.UUID
		wantLast  int64
		retriedAt int64 // first seq written by the retry
	}{
		{name: "execution A", exec: a, wantLast: 1500, retriedAt: 1235},
		{name: "execution B", exec: b, wantLast: 800, retriedAt: 778},
	}
	for _, tc := range tests {
		var got []store.LogLine
		for after := int64(0); ; {
			page, err := f.s.ListLogLines(f.ctx, sc.tenant.ID, tc.exec, after, 1000)
			require.NoError(t, err, tc.name)
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Seq
		}
		require.Len(t, got, int(tc.wantLast), "%s: every line once, none of the failed batch", tc.name)
		for i, l := range got {
			seq := int64(i + 1)
			require.Equal(t, seq, l.Seq, tc.name)
			require.Equal(t, ts(base.Add(time.Duration(seq)*time.Microsecond)), l.At, tc.name)
			wantMsg := message(tc.exec, seq)
			if seq >= tc.retriedAt {
				wantMsg = "retried"
			}
			require.Equal(t, wantMsg, l.Message, "%s: seq %d", tc.name, seq)
		}
	}
}
