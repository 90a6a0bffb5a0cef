package logview

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/style"
)

// MaxLines bounds the lines a view keeps; older ones are dropped.
const MaxLines = 10000

var lastID atomic.Int64

// LinesMsg delivers a batch from the tail, tagged with the view's ID.
type LinesMsg struct {
	ID    int64
	Batch data.LogBatch
	// Closed means the stream ended (ctx done or server closed it).
	Closed bool
}

// KeyMap is the log view's keys.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Top, Follow key.Binding
}

// DefaultKeyMap scrolls like less; F or end resumes following.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "scroll up (pauses)")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "scroll down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		Follow:   key.NewBinding(key.WithKeys("F", "end", "G"), key.WithHelp("F/end", "follow")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Up, k.Follow} }

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Follow}}
}

// Model is a log tail view.
type Model struct {
	KeyMap KeyMap
	id     int64
	target data.LogTarget
	title  string
	lines  []data.LogLine
	// top is the first shown line when not following.
	top    int
	follow bool
	ended  error
	closed bool
	width  int
	height int
	styles style.Styles
	ch     <-chan data.LogBatch
	cancel context.CancelFunc
}

// New returns a view of target titled title; Start begins the tail.
func New(target data.LogTarget, title string, st style.Styles) Model {
	return Model{
		KeyMap: DefaultKeyMap(),
		id:     lastID.Add(1),
		target: target,
		title:  title,
		follow: true,
		styles: st,
		width:  80,
		height: 10,
	}
}

// ID is the tag of this view's messages.
func (m Model) ID() int64 { return m.id }

// Target is what the view follows.
func (m Model) Target() data.LogTarget { return m.target }

// Following reports whether the view sticks to the newest line.
func (m Model) Following() bool { return m.follow }

// Lines returns the kept lines.
func (m Model) Lines() []data.LogLine { return m.lines }

// Start opens the tail under ctx; Close (or ctx) ends it.
func (m *Model) Start(ctx context.Context, src data.Source) tea.Cmd {
	ctx, m.cancel = context.WithCancel(ctx)
	m.ch = src.FollowLogs(ctx, m.target)
	return m.wait()
}

// Close stops the tail. The source's goroutine ends with the context.
func (m *Model) Close() {
	if m.cancel != nil {
		m.cancel()
	}
}

func (m Model) wait() tea.Cmd {
	ch, id := m.ch, m.id
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		b, ok := <-ch
		return LinesMsg{ID: id, Batch: b, Closed: !ok}
	}
}

// SetSize sets the size in cells (title line included).
func (m *Model) SetSize(w, h int) {
	m.width, m.height = w, max(h, 2)
	m.clamp()
}

func (m Model) page() int { return max(m.height-1, 1) }

func (m *Model) clamp() {
	maxTop := max(len(m.lines)-m.page(), 0)
	if m.follow {
		m.top = maxTop
	}
	m.top = max(min(m.top, maxTop), 0)
}

// Append adds lines (used by Update; exported for tests of the widget).
func (m *Model) Append(lines []data.LogLine) {
	if n := len(m.lines); n > 0 && m.lines[n-1].Partial && len(lines) > 0 {
		// The unfinished line is superseded by its continuation.
		m.lines = m.lines[:n-1]
	}
	m.lines = append(m.lines, lines...)
	if over := len(m.lines) - MaxLines; over > 0 {
		m.lines = append(m.lines[:0], m.lines[over:]...)
		if !m.follow {
			m.top = max(m.top-over, 0)
		}
	}
	m.clamp()
}

func (m *Model) scroll(delta int) {
	m.top += delta
	if delta < 0 {
		m.follow = false
	}
	m.clamp()
	if delta > 0 && m.top >= len(m.lines)-m.page() {
		// Scrolling back to the bottom resumes following, like less +F.
		m.follow = true
	}
}

// Update handles this view's lines and keys; other views' lines are ignored.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case LinesMsg:
		if msg.ID != m.id {
			return m, nil
		}
		if msg.Closed {
			m.closed = true
			return m, nil
		}
		m.Append(msg.Batch.Lines)
		if msg.Batch.Err != nil {
			m.ended = msg.Batch.Err
		}
		return m, m.wait()
	case tea.KeyMsg:
		switch {
		case key.Matches(msg, m.KeyMap.Up):
			m.scroll(-1)
		case key.Matches(msg, m.KeyMap.Down):
			m.scroll(1)
		case key.Matches(msg, m.KeyMap.PageUp):
			m.scroll(-m.page())
		case key.Matches(msg, m.KeyMap.PageDown):
			m.scroll(m.page())
		case key.Matches(msg, m.KeyMap.Top):
			m.scroll(-len(m.lines))
		case key.Matches(msg, m.KeyMap.Follow):
			m.follow = true
			m.clamp()
		}
	}
	return m, nil
}

// View draws the state line and the visible lines.
func (m Model) View() string {
	state := m.styles.OK.Render("following")
	switch {
	case m.ended != nil:
		state = m.styles.Error.Render("ended: " + m.ended.Error())
	case m.closed:
		state = m.styles.Dim.Render("stream closed")
	case !m.follow:
		state = m.styles.Warn.Render("paused — F to follow")
	}
	var b strings.Builder
	head := m.title + " · " + strconv.Itoa(len(m.lines)) + " lines · "
	b.WriteString(render.Fit(m.styles.Title.Render(head)+state, m.width))
	end := min(m.top+m.page(), len(m.lines))
	shown := 0
	for _, l := range m.lines[m.top:end] {
		b.WriteByte('\n')
		ts := l.At.UTC().Format("15:04:05")
		b.WriteString(render.Fit(m.styles.Dim.Render(ts)+" "+l.Text, m.width))
		shown++
	}
	if len(m.lines) == 0 {
		b.WriteByte('\n')
		b.WriteString(render.Fit(m.styles.Dim.Render("  waiting for output…"), m.width))
		shown++
	}
	for ; shown < m.page(); shown++ {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", m.width))
	}
	return b.String()
}
