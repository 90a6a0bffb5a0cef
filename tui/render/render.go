package render

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// Ellipsis marks truncated text.
const Ellipsis = "…"

// Truncate cuts s to at most w cells, marking the cut with an ellipsis.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, Ellipsis)
}

// Fit truncates or right-pads s to exactly w cells.
func Fit(s string, w int) string {
	s = Truncate(s, w)
	if pad := w - ansi.StringWidth(s); pad > 0 {
		return s + strings.Repeat(" ", pad)
	}
	return s
}

// FitRight is Fit with the text aligned right, for numbers.
func FitRight(s string, w int) string {
	s = Truncate(s, w)
	if pad := w - ansi.StringWidth(s); pad > 0 {
		return strings.Repeat(" ", pad) + s
	}
	return s
}

func clamp01(f float64) float64 {
	switch {
	case math.IsNaN(f) || f < 0:
		return 0
	case f > 1:
		return 1
	}
	return f
}

// Gauge draws frac (0..1) as a bar of w cells.
func Gauge(frac float64, w int) string {
	if w <= 0 {
		return ""
	}
	full := int(math.Round(clamp01(frac) * float64(w)))
	return strings.Repeat("█", full) + strings.Repeat("░", w-full)
}

// Percent formats frac (0..1) as a whole percentage, right-aligned in 4 cells.
func Percent(frac float64) string {
	return fmt.Sprintf("%3.0f%%", clamp01(frac)*100)
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the last w values (each scaled against max) as a line of
// block characters, left-padded with spaces when there are fewer values.
func Sparkline(values []float64, max float64, w int) string {
	if w <= 0 {
		return ""
	}
	if len(values) > w {
		values = values[len(values)-w:]
	}
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", w-len(values)))
	for _, v := range values {
		f := 0.0
		if max > 0 {
			f = clamp01(v / max)
		}
		b.WriteRune(sparkRunes[int(math.Round(f*float64(len(sparkRunes)-1)))])
	}
	return b.String()
}

// Ago renders how long before now t was, in the largest whole unit ("4s",
// "47m", "2h", "3d"); "-" for the zero time, "0s" for the future.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// Bytes renders a size with a binary unit and one decimal ("12.0G").
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}

// MiB renders a size given in MiB.
func MiB(n int) string {
	if n < 0 {
		n = 0
	}
	return Bytes(uint64(n) << 20)
}

// Progress renders done of total as a bar of w cells and a count ("██░ 2/3").
func Progress(done, total, w int) string {
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	return fmt.Sprintf("%s %d/%d", Gauge(frac, w), done, total)
}

// CrumbSep separates breadcrumbs.
const CrumbSep = " › "

// Breadcrumbs joins parts into a path that fits w cells, dropping leading
// parts (replaced by an ellipsis) before it truncates the last one.
func Breadcrumbs(parts []string, w int) string {
	for i := 0; i < len(parts); i++ {
		s := strings.Join(parts[i:], CrumbSep)
		if i > 0 {
			s = Ellipsis + CrumbSep + s
		}
		if ansi.StringWidth(s) <= w || i == len(parts)-1 {
			return Truncate(s, w)
		}
	}
	return ""
}

// ShortID is the part of an id that tells objects apart on screen. For a
// UUID that is its last group: the first groups of a UUIDv7 are its
// creation time, shared by everything made in the same minute, while the
// last 12 hex digits are random. Other ids are shown whole.
func ShortID(id string) string {
	if isUUID(id) {
		return id[24:]
	}
	return id
}

func isUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, r := range id {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// TruncateHead cuts s to at most w cells by dropping its start, marking the
// cut with an ellipsis: for ids, whose distinguishing part is the tail.
func TruncateHead(s string, w int) string {
	if w <= 0 {
		return ""
	}
	sw := ansi.StringWidth(s)
	if sw <= w {
		return s
	}
	return ansi.TruncateLeft(s, sw-w+1, Ellipsis)
}

// Column describes one table column for Layout.
type Column struct {
	Title string
	// Min is the narrowest width the column is shown at.
	Min int
	// Flex shares out the space left after every Min is met; 0 keeps Min.
	Flex int
	// Right aligns the column's cells right (numbers).
	Right bool
	// KeepTail truncates from the left (ids: full where there is room,
	// the distinguishing tail where not).
	KeepTail bool
}

// Layout computes column widths for a total width, with one space between
// columns. Columns that do not fit at their minimum are dropped from the
// right (width 0) so narrow terminals keep the most important ones.
func Layout(cols []Column, total int) []int {
	widths := make([]int, len(cols))
	used, flex, shown := 0, 0, 0
	for i, c := range cols {
		need := c.Min
		if shown > 0 {
			need++
		}
		if used+need > total {
			break
		}
		widths[i] = c.Min
		used += need
		flex += c.Flex
		shown++
	}
	spare := total - used
	if spare <= 0 || flex == 0 {
		return widths
	}
	given := 0
	last := -1
	for i, c := range cols {
		if widths[i] == 0 || c.Flex == 0 {
			continue
		}
		add := spare * c.Flex / flex
		widths[i] += add
		given += add
		last = i
	}
	if last >= 0 {
		widths[last] += spare - given
	}
	return widths
}

// Row joins cells at the given widths (0 hides a column), one space apart.
func Row(cells []string, cols []Column, widths []int) string {
	var b strings.Builder
	first := true
	for i, w := range widths {
		if w == 0 {
			continue
		}
		if !first {
			b.WriteByte(' ')
		}
		first = false
		cell := ""
		if i < len(cells) {
			cell = cells[i]
		}
		b.WriteString(FitCell(cell, cols, i, w))
	}
	return b.String()
}

// FitCell fits one cell of column i to w cells by the column's rules.
func FitCell(cell string, cols []Column, i, w int) string {
	if i < len(cols) && cols[i].KeepTail {
		cell = TruncateHead(cell, w)
	}
	if i < len(cols) && cols[i].Right {
		return FitRight(cell, w)
	}
	return Fit(cell, w)
}
