package hostfacts

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrParse is wrapped by every parser error.
var ErrParse = errors.New("parsing host file")

// CPUInfo is what /proc/cpuinfo says about the processors.
type CPUInfo struct {
	// Model is the processor's marketing name, or on arm64 (which has
	// none) the board model or the implementer and part numbers.
	Model string
	// LogicalCPUs counts "processor" entries: the CPUs the kernel
	// schedules on, which is what vCPU placement cares about.
	LogicalCPUs int
	// Virtualization is "vmx" (Intel VT-x) or "svm" (AMD-V) when the CPU
	// flags advertise hardware virtualisation, else empty. On arm64 it is
	// always empty: there /dev/kvm is the only signal.
	Virtualization string
}

// ParseCPUInfo parses the text of /proc/cpuinfo.
func ParseCPUInfo(s string) CPUInfo {
	var (
		info                  CPUInfo
		modelName, boardModel string
		implementer, part     string
		hardware              string
	)
	for _, line := range strings.Split(s, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "processor":
			info.LogicalCPUs++
		case "model name":
			if modelName == "" {
				modelName = value
			}
		case "Model":
			boardModel = value
		case "Hardware":
			hardware = value
		case "CPU implementer":
			if implementer == "" {
				implementer = value
			}
		case "CPU part":
			if part == "" {
				part = value
			}
		case "flags":
			if info.Virtualization == "" {
				for _, f := range strings.Fields(value) {
					if f == "vmx" || f == "svm" {
						info.Virtualization = f
						break
					}
				}
			}
		}
	}
	switch {
	case modelName != "":
		info.Model = modelName
	case boardModel != "":
		info.Model = boardModel
	case hardware != "":
		info.Model = hardware
	case implementer != "":
		info.Model = "implementer " + implementer + " part " + part
	}
	return info
}

// MemInfo is what /proc/meminfo says, in bytes.
type MemInfo struct {
	TotalBytes int64
	// AvailableBytes estimates what can be allocated without swapping.
	AvailableBytes int64
}

// UsedBytes is the memory in use: total minus available.
func (m MemInfo) UsedBytes() int64 { return max(m.TotalBytes-m.AvailableBytes, 0) }

// ParseMemInfo parses the text of /proc/meminfo. Kernels older than 3.14
// have no MemAvailable; then free + buffers + cached is the estimate, as
// the kernel's own documentation suggests for them.
func ParseMemInfo(s string) (MemInfo, error) {
	fields := make(map[string]int64)
	for _, line := range strings.Split(s, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		parts := strings.Fields(value)
		if len(parts) == 0 {
			continue
		}
		n, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return MemInfo{}, fmt.Errorf("%w: meminfo %s: %q is not a number", ErrParse, key, parts[0])
		}
		if len(parts) > 1 && parts[1] == "kB" {
			n *= 1024
		}
		fields[strings.TrimSpace(key)] = n
	}
	total, ok := fields["MemTotal"]
	if !ok {
		return MemInfo{}, fmt.Errorf("%w: meminfo has no MemTotal", ErrParse)
	}
	avail, ok := fields["MemAvailable"]
	if !ok {
		avail = fields["MemFree"] + fields["Buffers"] + fields["Cached"]
	}
	return MemInfo{TotalBytes: total, AvailableBytes: min(avail, total)}, nil
}

// OSRelease holds the fields of os-release(5) the agent reports.
type OSRelease struct {
	ID         string
	Name       string
	VersionID  string
	PrettyName string
}

// String names the OS for humans: PRETTY_NAME, else NAME VERSION_ID, else
// "Linux" as os-release(5) prescribes for a missing NAME.
func (o OSRelease) String() string {
	switch {
	case o.PrettyName != "":
		return o.PrettyName
	case o.Name != "" && o.VersionID != "":
		return o.Name + " " + o.VersionID
	case o.Name != "":
		return o.Name
	}
	return "Linux"
}

// ParseOSRelease parses os-release(5) text: KEY=value lines, values
// optionally in single or double quotes with shell-style backslash escapes;
// comments, blank and malformed lines are ignored.
func ParseOSRelease(s string) OSRelease {
	var o OSRelease
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(key, " \t") {
			continue
		}
		value = unquote(value)
		switch key {
		case "ID":
			o.ID = value
		case "NAME":
			o.Name = value
		case "VERSION_ID":
			o.VersionID = value
		case "PRETTY_NAME":
			o.PrettyName = value
		}
	}
	return o
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1] // no escapes inside single quotes
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// CPUTimes are the aggregate CPU counters of /proc/stat, in clock ticks.
type CPUTimes struct {
	// Idle counts idle and iowait: a CPU waiting for I/O could run
	// something else.
	Idle  uint64
	Total uint64
}

// ParseProcStat parses the aggregate "cpu" line of /proc/stat.
func ParseProcStat(s string) (CPUTimes, error) {
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		if len(fields) < 5 {
			return CPUTimes{}, fmt.Errorf("%w: stat cpu line has %d fields", ErrParse, len(fields))
		}
		var t CPUTimes
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user and nice, so it is left
		// out of the total.
		for i, f := range fields[1:min(len(fields), 9)] {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("%w: stat cpu field %d: %q is not a number", ErrParse, i+1, f)
			}
			t.Total += n
			if i == 3 || i == 4 {
				t.Idle += n
			}
		}
		return t, nil
	}
	return CPUTimes{}, fmt.Errorf("%w: stat has no cpu line", ErrParse)
}

// CPUPercent is the busy share of all CPUs between two samples, 0 to 100.
// Counters that went backwards (a different boot, a wrapped counter) yield
// 0 rather than nonsense.
func CPUPercent(prev, cur CPUTimes) float64 {
	if cur.Total <= prev.Total || cur.Idle < prev.Idle {
		return 0
	}
	total := float64(cur.Total - prev.Total)
	idle := float64(cur.Idle - prev.Idle)
	return min(max((total-idle)/total*100, 0), 100)
}

// ParseLoadAvg returns the one-minute load average from /proc/loadavg.
func ParseLoadAvg(s string) (float64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, fmt.Errorf("%w: loadavg is empty", ErrParse)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: loadavg %q is not a load", ErrParse, fields[0])
	}
	return v, nil
}

// ParseUptime returns whole seconds since boot from /proc/uptime.
func ParseUptime(s string) (int64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, fmt.Errorf("%w: uptime is empty", ErrParse)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: uptime %q is not a duration", ErrParse, fields[0])
	}
	return int64(v), nil
}

// Mount is one line of /proc/self/mounts.
type Mount struct {
	Device string
	Point  string
	FSType string
}

// ParseMounts parses /proc/self/mounts (fstab format, with spaces and
// other special characters in paths escaped as \ooo octal).
func ParseMounts(s string) []Mount {
	var out []Mount
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		out = append(out, Mount{Device: unescapeOctal(f[0]), Point: unescapeOctal(f[1]), FSType: f[2]})
	}
	return out
}

// MountFor returns the mount that holds path: the longest mount point that
// is path or one of its parents, the last one listed when several are
// stacked on the same point (the visible one).
func MountFor(mounts []Mount, path string) (Mount, bool) {
	var best Mount
	found := false
	for _, m := range mounts {
		if !within(path, m.Point) {
			continue
		}
		if !found || len(m.Point) >= len(best.Point) {
			best, found = m, true
		}
	}
	return best, found
}

func within(path, point string) bool {
	if point == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == point || strings.HasPrefix(path, point+"/")
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
