package hostfacts

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

func TestParseCPUInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want CPUInfo
	}{
		{"cpuinfo-x86", CPUInfo{Model: "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", LogicalCPUs: 2, Virtualization: "vmx"}},
		{"cpuinfo-amd-guest", CPUInfo{Model: "AMD EPYC", LogicalCPUs: 4, Virtualization: "svm"}},
		{"cpuinfo-arm64", CPUInfo{Model: "implementer 0x41 part 0xd0c", LogicalCPUs: 2}},
		{"cpuinfo-rpi", CPUInfo{Model: "Raspberry Pi 4 Model B Rev 1.4", LogicalCPUs: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, ParseCPUInfo(testdata(t, tt.file)))
		})
	}
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, CPUInfo{}, ParseCPUInfo(""))
	})
}

func TestParseMemInfo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		want    MemInfo
		wantErr bool
	}{
		{name: "modern kernel", text: testdata(t, "meminfo"), want: MemInfo{TotalBytes: 16318412 * 1024, AvailableBytes: 9876540 * 1024}},
		{name: "no MemAvailable", text: testdata(t, "meminfo-old"), want: MemInfo{TotalBytes: 2048000 * 1024, AvailableBytes: (512000 + 128000 + 256000) * 1024}},
		{name: "available capped at total", text: "MemTotal: 100 kB\nMemFree: 200 kB\n", want: MemInfo{TotalBytes: 102400, AvailableBytes: 102400}},
		{name: "no total", text: "MemFree: 1 kB\n", wantErr: true},
		{name: "garbage number", text: "MemTotal: lots kB\n", wantErr: true},
		{name: "empty", text: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMemInfo(tt.text)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrParse)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	t.Run("used", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, int64(60), MemInfo{TotalBytes: 100, AvailableBytes: 40}.UsedBytes())
	})
}

func TestParseOSRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		text       string
		want       OSRelease
		wantString string
	}{
		{
			name:       "debian",
			text:       testdata(t, "os-release-debian"),
			want:       OSRelease{ID: "debian", Name: "Debian GNU/Linux", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
			wantString: "Debian GNU/Linux 12 (bookworm)",
		},
		{
			name:       "quoting and junk",
			text:       testdata(t, "os-release-quirky"),
			want:       OSRelease{ID: "edgeos", Name: "Edge OS", VersionID: "2024.1", PrettyName: `Edge "OS" 2024.1 $stable\`},
			wantString: `Edge "OS" 2024.1 $stable\`,
		},
		{name: "name and version only", text: "NAME=Alpine\nVERSION_ID=3.20\n", want: OSRelease{Name: "Alpine", VersionID: "3.20"}, wantString: "Alpine 3.20"},
		{name: "name only", text: "NAME=Alpine\n", want: OSRelease{Name: "Alpine"}, wantString: "Alpine"},
		{name: "empty", text: "", wantString: "Linux"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ParseOSRelease(tt.text)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantString, got.String())
		})
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		want    CPUTimes
		wantErr bool
	}{
		{name: "sample 1", text: testdata(t, "stat-1"), want: CPUTimes{Idle: 8500, Total: 10000}},
		{name: "sample 2", text: testdata(t, "stat-2"), want: CPUTimes{Idle: 9500, Total: 12000}},
		{name: "old kernel with four fields", text: "cpu 1 2 3 4\n", want: CPUTimes{Idle: 4, Total: 10}},
		{name: "guest time not double counted", text: "cpu 10 0 0 10 0 0 0 0 7 7\n", want: CPUTimes{Idle: 10, Total: 20}},
		{name: "no cpu line", text: "cpu0 1 2 3 4\nintr 5\n", wantErr: true},
		{name: "short cpu line", text: "cpu 1 2\n", wantErr: true},
		{name: "garbage", text: "cpu 1 x 3 4\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseProcStat(tt.text)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrParse)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCPUPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		prev, cur CPUTimes
		want      float64
	}{
		{"stat-1 to stat-2", CPUTimes{Idle: 8500, Total: 10000}, CPUTimes{Idle: 9500, Total: 12000}, 50},
		{"since boot", CPUTimes{}, CPUTimes{Idle: 8500, Total: 10000}, 15},
		{"all idle", CPUTimes{Idle: 10, Total: 10}, CPUTimes{Idle: 20, Total: 20}, 0},
		{"all busy", CPUTimes{Idle: 10, Total: 10}, CPUTimes{Idle: 10, Total: 20}, 100},
		{"no time passed", CPUTimes{Idle: 10, Total: 10}, CPUTimes{Idle: 10, Total: 10}, 0},
		{"counters went back", CPUTimes{Idle: 10, Total: 100}, CPUTimes{Idle: 5, Total: 50}, 0},
		{"idle went back", CPUTimes{Idle: 10, Total: 100}, CPUTimes{Idle: 5, Total: 150}, 0},
		{"idle grew more than total", CPUTimes{Idle: 0, Total: 100}, CPUTimes{Idle: 60, Total: 150}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tt.want, CPUPercent(tt.prev, tt.cur), 1e-9)
		})
	}
}

func TestParseLoadAvgAndUptime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		parse   func(string) (float64, error)
		text    string
		want    float64
		wantErr bool
	}{
		{name: "load", parse: ParseLoadAvg, text: "0.52 0.58 0.59 1/189 12345\n", want: 0.52},
		{name: "load empty", parse: ParseLoadAvg, text: "", wantErr: true},
		{name: "load garbage", parse: ParseLoadAvg, text: "high 1 1", wantErr: true},
		{name: "load negative", parse: ParseLoadAvg, text: "-1 1 1", wantErr: true},
		{name: "uptime", parse: uptimeFloat, text: "12345.67 23456.78\n", want: 12345},
		{name: "uptime empty", parse: uptimeFloat, text: " ", wantErr: true},
		{name: "uptime garbage", parse: uptimeFloat, text: "long", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.parse(tt.text)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrParse)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tt.want, got, 1e-9)
		})
	}
}

func uptimeFloat(s string) (float64, error) {
	v, err := ParseUptime(s)
	return float64(v), err
}

func TestParseMountsAndMountFor(t *testing.T) {
	t.Parallel()
	mounts := ParseMounts(testdata(t, "proc/self/mounts"))
	require.Len(t, mounts, 5)
	require.Equal(t, Mount{Device: "/dev/nvme0n1p2", Point: "/var/lib/my images", FSType: "xfs"}, mounts[3], "octal escapes decoded")

	tests := []struct {
		path string
		want Mount
		ok   bool
	}{
		{"/", Mount{Device: "overlay", Point: "/", FSType: "overlay"}, true}, // the last stacked mount is the visible one
		{"/var/lib/my images/vm.raw", Mount{Device: "/dev/nvme0n1p2", Point: "/var/lib/my images", FSType: "xfs"}, true},
		{"/var/lib/my images", Mount{Device: "/dev/nvme0n1p2", Point: "/var/lib/my images", FSType: "xfs"}, true},
		{"/var/lib/my imagesX", Mount{Device: "overlay", Point: "/", FSType: "overlay"}, true}, // prefix of a name is not a parent
		{"/run/nkudo", Mount{Device: "tmpfs", Point: "/run", FSType: "tmpfs"}, true},
		{"relative", Mount{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			got, ok := MountFor(mounts, tt.path)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, []Mount(nil), ParseMounts("short line\n\n"))
	require.Equal(t, `a\9b`, unescapeOctal(`a\9b`), "not an escape")
	require.Equal(t, `tail\04`, unescapeOctal(`tail\04`), "truncated escape")
}
