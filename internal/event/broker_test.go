package event

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

var clock = time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC)

func newTestBroker(history, buf int) *Broker {
	return NewBroker(Options{History: history, SubscriberBuffer: buf, Now: func() time.Time { return clock }})
}

// drain reads n events or fails the test.
func drain(t *testing.T, sub *Subscription, n int) []Event {
	t.Helper()
	out := make([]Event, 0, n)
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e, ok := <-sub.C():
			require.True(t, ok, "subscription ended after %d of %d events: %v", len(out), n, sub.Err())
			out = append(out, e)
		case <-timeout:
			t.Fatalf("got %d of %d events", len(out), n)
		}
	}
	return out
}

// requireNothing checks that no event is waiting.
func requireNothing(t *testing.T, sub *Subscription) {
	t.Helper()
	select {
	case e := <-sub.C():
		t.Fatalf("unexpected event %+v", e)
	default:
	}
}

func TestSequenceStartsAtClock(t *testing.T) {
	t.Parallel()
	b := newTestBroker(0, 0)
	require.Equal(t, uint64(clock.UnixMicro()), b.Head())
	e := b.Publish(Event{Type: TypeSiteUpdated})
	require.Equal(t, uint64(clock.UnixMicro())+1, e.Seq)
	require.Equal(t, clock, e.At)
}

func TestPublishDeliversInOrderToTheTenantOnly(t *testing.T) {
	t.Parallel()
	b := newTestBroker(100, 100)
	tenantA, tenantB := uuid.New(), uuid.New()
	subA, replay, resync := b.Subscribe(tenantA, 0)
	require.Nil(t, replay)
	require.False(t, resync)
	defer subA.Close()
	subB, _, _ := b.Subscribe(tenantB, 0)
	defer subB.Close()
	require.Equal(t, b.Head(), subA.Start())

	var wantA, wantB []uint64
	for i := range 30 {
		tenant := tenantA
		if i%3 == 0 {
			tenant = tenantB
		}
		e := b.Publish(Event{Type: TypeVMUpdated, TenantID: tenant, ID: uuid.New()})
		if tenant == tenantA {
			wantA = append(wantA, e.Seq)
		} else {
			wantB = append(wantB, e.Seq)
		}
	}
	for _, tc := range []struct {
		sub  *Subscription
		want []uint64
		tid  uuid.UUID
	}{{subA, wantA, tenantA}, {subB, wantB, tenantB}} {
		got := drain(t, tc.sub, len(tc.want))
		seqs := make([]uint64, len(got))
		for i, e := range got {
			require.Equal(t, tc.tid, e.TenantID)
			seqs[i] = e.Seq
		}
		require.Equal(t, tc.want, seqs)
		requireNothing(t, tc.sub)
	}
}

func TestSubscribeResume(t *testing.T) {
	t.Parallel()
	tenant, other := uuid.New(), uuid.New()
	// 8 events in a ring of 5: seqs start+4 … start+8 are buffered.
	b := newTestBroker(5, 10)
	start := b.Head()
	var mine []uint64
	for i := range 8 {
		tid := tenant
		if i%2 == 1 {
			tid = other
		}
		e := b.Publish(Event{Type: TypeHostUpdated, TenantID: tid})
		if tid == tenant {
			mine = append(mine, e.Seq)
		}
	}
	head := b.Head()
	require.Equal(t, start+8, head)

	tests := []struct {
		name   string
		since  uint64
		replay []uint64
		resync bool
	}{
		{name: "from now on", since: 0},
		{name: "up to date", since: head},
		{name: "just one missed", since: head - 1, replay: nil}, // head is the other tenant's
		{name: "oldest buffered is next", since: start + 3, replay: []uint64{start + 5, start + 7}},
		{name: "in the middle", since: start + 5, replay: []uint64{start + 7}},
		{name: "older than the ring", since: start + 2, resync: true},
		{name: "from an earlier incarnation", since: start - 100, resync: true},
		{name: "from the future", since: head + 1, resync: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub, replay, resync := b.Subscribe(tenant, tc.since)
			defer sub.Close()
			require.Equal(t, tc.resync, resync)
			var got []uint64
			for _, e := range replay {
				require.Equal(t, tenant, e.TenantID)
				got = append(got, e.Seq)
			}
			require.Equal(t, tc.replay, got)
		})
	}
	require.Equal(t, []uint64{start + 1, start + 3, start + 5, start + 7}, mine)
}

func TestResumeThenLiveHasNoGapNorDuplicate(t *testing.T) {
	t.Parallel()
	tenant := uuid.New()
	b := newTestBroker(100, 100)
	first := b.Publish(Event{TenantID: tenant})
	second := b.Publish(Event{TenantID: tenant})
	sub, replay, resync := b.Subscribe(tenant, first.Seq)
	defer sub.Close()
	require.False(t, resync)
	require.Len(t, replay, 1)
	require.Equal(t, second.Seq, replay[0].Seq)
	third := b.Publish(Event{TenantID: tenant})
	got := drain(t, sub, 1)
	require.Equal(t, third.Seq, got[0].Seq)
	requireNothing(t, sub)
}

func TestSlowSubscriberIsCutOffWithoutBlocking(t *testing.T) {
	t.Parallel()
	tenant := uuid.New()
	b := newTestBroker(100, 3)
	slow, _, _ := b.Subscribe(tenant, 0)
	defer slow.Close()
	fast, _, _ := b.Subscribe(tenant, 0)
	defer fast.Close()

	var got []Event
	// Nobody reads slow; the fast one reads as it goes. Publish must
	// return every time (a blocked Publish hangs the test).
	for range 10 {
		b.Publish(Event{Type: TypeHostUpdated, TenantID: tenant})
		got = append(got, drain(t, fast, 1)...)
	}
	require.Len(t, got, 10)

	delivered := 0
	for range slow.C() {
		delivered++
	}
	require.Equal(t, 3, delivered, "the buffered events are still delivered, then the channel closes")
	require.ErrorIs(t, slow.Err(), ErrLagged)
	require.NoError(t, fast.Err())
	slow.Close()
	require.ErrorIs(t, slow.Err(), ErrLagged, "Close after a cut-off keeps the reason")
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	b := newTestBroker(10, 10)
	sub, _, _ := b.Subscribe(uuid.New(), 0)
	sub.Close()
	sub.Close()
	_, ok := <-sub.C()
	require.False(t, ok)
	require.ErrorIs(t, sub.Err(), ErrClosed)
	b.mu.Lock()
	require.Empty(t, b.subs, "closed subscriptions are forgotten")
	b.mu.Unlock()
}

func TestConcurrentPublishAndSubscribe(t *testing.T) {
	t.Parallel()
	const publishers, perPublisher, subscribers = 4, 500, 6
	tenants := []uuid.UUID{uuid.New(), uuid.New()}
	b := newTestBroker(publishers*perPublisher, publishers*perPublisher)
	var pubs, wg sync.WaitGroup
	pubDone := make(chan struct{})
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range perPublisher {
				b.Publish(Event{Type: TypeVMUpdated, TenantID: tenants[(p+i)%2]})
			}
		}()
	}
	errs := make(chan string, subscribers)
	for i := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := tenants[i%2]
			sub, replay, _ := b.Subscribe(tenant, b.Head()-3)
			defer sub.Close()
			last := uint64(0)
			check := func(e Event) bool {
				if e.TenantID != tenant || e.Seq <= last {
					errs <- "out of order or foreign event"
					return false
				}
				last = e.Seq
				return true
			}
			for _, e := range replay {
				if !check(e) {
					return
				}
			}
			// Read a while, then leave while publishers still run.
			for range 100 {
				select {
				case e, ok := <-sub.C():
					if !ok || !check(e) {
						return
					}
				case <-pubDone:
					return
				}
			}
		}()
	}
	// Subscribers stop waiting for events once publishers are done.
	pubs.Wait()
	close(pubDone)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	require.Equal(t, uint64(clock.UnixMicro())+publishers*perPublisher, b.Head())
}

func BenchmarkPublish100Subscribers(b *testing.B) {
	tenant := uuid.New()
	br := NewBroker(Options{})
	var wg sync.WaitGroup
	for range 100 {
		sub, _, _ := br.Subscribe(tenant, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range sub.C() {
			}
		}()
		b.Cleanup(sub.Close)
	}
	obj := HostPatch{ID: uuid.New(), TenantID: tenant, Online: true, LastSeenAt: clock}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		br.Publish(Event{Type: TypeHostUpdated, TenantID: tenant, ID: obj.ID, At: clock, Object: obj})
	}
	b.StopTimer()
	br.mu.Lock()
	for _, set := range br.subs {
		for s := range set {
			br.dropLocked(s, ErrClosed)
		}
	}
	br.mu.Unlock()
	wg.Wait()
}
