package remote

import (
	"bytes"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"

	"github.com/kubedoio/n-kudo/tui/data"
)

// maxConsoleLine bounds an unfinished console line: a guest that never
// prints a newline must not grow the buffer without limit, so a longer
// run is cut into lines of this size.
const maxConsoleLine = 4096

// ConsoleLines cuts a serial console's byte chunks into lines the log view
// can show. Chunks split lines and UTF-8 sequences anywhere, and a prompt
// ("login: ") has no newline yet, so the unfinished tail of the output is
// emitted as a Partial line that the next batch's first line replaces.
// Terminal control sequences and other control characters are dropped:
// the guest must not be able to drive the operator's terminal. The zero
// value is ready to use; it is not safe for concurrent use.
type ConsoleLines struct {
	pending []byte    // bytes of the unfinished line
	at      time.Time // when the unfinished line began
}

// Write takes a chunk received at now and returns the lines it finished,
// then the unfinished one (Partial) if any.
func (c *ConsoleLines) Write(chunk []byte, now time.Time) []data.LogLine {
	var out []data.LogLine
	for len(chunk) > 0 {
		if len(c.pending) == 0 {
			c.at = now
		}
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			c.pending = append(c.pending, chunk...)
			chunk = nil
		} else {
			c.pending = append(c.pending, chunk[:i]...)
			chunk = chunk[i+1:]
			out = append(out, data.LogLine{At: c.at, Stream: "console", Text: cleanConsole(c.pending)})
			c.pending = c.pending[:0]
			continue
		}
		for len(c.pending) > maxConsoleLine {
			cut := maxConsoleLine
			// Never split a UTF-8 sequence at the cut.
			for cut > maxConsoleLine-utf8.UTFMax && !utf8.RuneStart(c.pending[cut]) {
				cut--
			}
			out = append(out, data.LogLine{At: c.at, Stream: "console", Text: cleanConsole(c.pending[:cut])})
			c.pending = append(c.pending[:0], c.pending[cut:]...)
			c.at = now
		}
	}
	if len(c.pending) > 0 {
		out = append(out, data.LogLine{At: c.at, Stream: "console", Text: cleanConsole(c.pending), Partial: true})
	}
	return out
}

// cleanConsole turns raw console bytes into printable text: escape
// sequences stripped, a carriage return keeps what follows it (as a
// terminal would overwrite the line), tabs become spaces, other control
// characters and invalid UTF-8 are dropped or replaced.
func cleanConsole(b []byte) string {
	s := ansi.Strip(strings.ToValidUTF8(string(b), "\uFFFD"))
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
}
