package render

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTruncateAndFit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		w        int
		trunc    string
		fit      string
		right    string
	}{
		{"fits", "abc", 5, "abc", "abc  ", "  abc"},
		{"exact", "abcde", 5, "abcde", "abcde", "abcde"},
		{"cut", "abcdefgh", 5, "abcd…", "abcd…", "abcd…"},
		{"zero", "abc", 0, "", "", ""},
		{"wide runes", "日本語テキスト", 6, "日本…", "日本… ", " 日本…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.trunc, Truncate(tt.in, tt.w))
			require.Equal(t, tt.fit, Fit(tt.in, tt.w))
			require.Equal(t, tt.right, FitRight(tt.in, tt.w))
		})
	}
}

func TestGaugeAndPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		frac    float64
		w       int
		gauge   string
		percent string
	}{
		{0, 4, "░░░░", "  0%"},
		{0.5, 4, "██░░", " 50%"},
		{1, 4, "████", "100%"},
		{1.7, 4, "████", "100%"},
		{-1, 4, "░░░░", "  0%"},
		{0.42, 10, "████░░░░░░", " 42%"},
		{0.5, 0, "", " 50%"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.gauge, Gauge(tt.frac, tt.w), "gauge %v/%d", tt.frac, tt.w)
		require.Equal(t, tt.percent, Percent(tt.frac), "percent %v", tt.frac)
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []float64
		max    float64
		w      int
		want   string
	}{
		{"empty pads", nil, 100, 3, "   "},
		{"scale", []float64{0, 50, 100}, 100, 3, "▁▅█"},
		{"keeps last", []float64{100, 100, 0, 0}, 100, 2, "▁▁"},
		{"pads left", []float64{100}, 100, 3, "  █"},
		{"zero max", []float64{5}, 0, 1, "▁"},
		{"clamps", []float64{500}, 100, 1, "█"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Sparkline(tt.values, tt.max, tt.w))
		})
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now.Add(time.Minute), "0s"},
		{now.Add(-4 * time.Second), "4s"},
		{now.Add(-47 * time.Minute), "47m"},
		{now.Add(-5 * time.Hour), "5h"},
		{now.Add(-72 * time.Hour), "3d"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Ago(now, tt.t))
	}
}

func TestBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1.0K"}, {12 << 30, "12.0G"}, {1536 << 20, "1.5G"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Bytes(tt.n))
	}
	require.Equal(t, "2.0G", MiB(2048))
	require.Equal(t, "0B", MiB(-1))
}

func TestProgress(t *testing.T) {
	t.Parallel()
	require.Equal(t, "██░ 2/3", Progress(2, 3, 3))
	require.Equal(t, "░░░ 0/0", Progress(0, 0, 3))
}

func TestBreadcrumbs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		parts []string
		w     int
		want  string
	}{
		{"fits", []string{"sites", "edge-ams", "hosts"}, 40, "sites › edge-ams › hosts"},
		{"drops head", []string{"sites", "edge-ams", "hosts"}, 18, "… › hosts"},
		{"single cut", []string{"a-very-long-name"}, 6, "a-ver…"},
		{"empty", nil, 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Breadcrumbs(tt.parts, tt.w))
		})
	}
}

func TestLayoutAndRow(t *testing.T) {
	t.Parallel()
	cols := []Column{{Title: "NAME", Min: 6, Flex: 2}, {Title: "STATE", Min: 7, Flex: 1}, {Title: "CPU", Min: 4, Right: true}}
	tests := []struct {
		name  string
		total int
		want  []int
	}{
		{"exact minimum", 19, []int{6, 7, 4}},
		{"spare shared by flex", 25, []int{10, 9, 4}},
		{"drops right columns", 14, []int{6, 7, 0}},
		{"too narrow for anything", 3, []int{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Layout(cols, tt.total))
		})
	}
	require.Equal(t, "web-1  running    2", Row([]string{"web-1", "running", "2"}, cols, []int{6, 7, 4}))
	require.Equal(t, "web-1  running", Row([]string{"web-1", "running", "2"}, cols, []int{6, 7, 0}))
}

func TestShortIDAndTruncateHead(t *testing.T) {
	t.Parallel()
	// Two UUIDv7s made in the same millisecond share their first 48 bits;
	// what tells them apart is the random tail.
	a, b := "01a23c3f-1e2a-7b3c-8d4e-5f60718293a4", "01a23c3f-1e2a-7c00-9abc-def012345678"
	tests := []struct{ name, got, want string }{
		{"uuid keeps the random tail", ShortID(a), "5f60718293a4"},
		{"uuids made together differ", ShortID(b), "def012345678"},
		{"other ids stay whole", ShortID("plan-b"), "plan-b"},
		{"head cut keeps the tail", TruncateHead(a, 13), "…5f60718293a4"},
		{"fits untouched", TruncateHead("web-1", 8), "web-1"},
		{"zero width", TruncateHead(a, 0), ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.got, tt.name)
	}
	cols := []Column{{Title: "ID", Min: 13, KeepTail: true}}
	require.Equal(t, "…5f60718293a4", Row([]string{a}, cols, []int{13}))
	require.Equal(t, a, Row([]string{a}, cols, []int{36}))
}
