package table

import (
	"cmp"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/kubedoio/n-kudo/tui/render"
	"github.com/kubedoio/n-kudo/tui/style"
)

// Column is a render.Column plus how it sorts.
type Column struct {
	render.Column
	// Numeric sorts by Row.Nums[i] instead of the cell text.
	Numeric bool
	// Key marks the columns that name the row (NAME, HOST): they widen to
	// their longest cell (up to MaxKey) before any column to their right
	// is shown, so less important columns give way first.
	Key bool
}

// MaxKey caps how wide a Key column grows to fit its cells.
const MaxKey = 32

// Gutter is the cursor column left of every row: a marker that needs no
// colour, so the selection shows under NO_COLOR and on monochrome
// terminals.
const (
	Gutter       = 2
	CursorMarker = "▶ "
	noMarker     = "  "
)

// Row is one line of the table.
type Row struct {
	// ID identifies the row across updates (the object's id).
	ID    string
	Cells []string
	// Nums holds sort keys for Numeric columns, by column index.
	Nums []float64

	search string
}

// KeyMap is the table's navigation and sorting keys.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding
	SortNext, SortPrev, SortReverse       key.Binding
}

// DefaultKeyMap is vim- and arrow-friendly, like k9s.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:          key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:        key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:      key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown:    key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Home:        key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		End:         key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "bottom")),
		SortNext:    key.NewBinding(key.WithKeys("shift+right", ">"), key.WithHelp(">", "sort next col")),
		SortPrev:    key.NewBinding(key.WithKeys("shift+left", "<"), key.WithHelp("<", "sort prev col")),
		SortReverse: key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "reverse sort")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.SortNext, k.SortReverse}
}

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End, k.SortNext, k.SortPrev, k.SortReverse}}
}

// CellStyler picks the style of a cell of an unselected row; nil keeps the
// plain cell style.
type CellStyler func(col int, cell string) lipgloss.Style

// Model is the table state. The zero value is not usable; call New.
type Model struct {
	KeyMap KeyMap

	cols   []Column
	rcols  []render.Column
	widths []int
	rows   []Row
	index  map[string]int
	// order holds every row index, sorted; view is the filtered subsequence
	// of order, so a filter keystroke never re-sorts.
	order   []int
	view    []int
	cursor  int
	offset  int
	width   int
	height  int
	filter  string
	sortCol int
	desc    bool
	styles  style.Styles
	styler  CellStyler
	empty   string
}

// Option configures a Model.
type Option func(*Model)

// WithStyles sets the styles.
func WithStyles(s style.Styles) Option { return func(m *Model) { m.styles = s } }

// WithCellStyler sets per-cell styling.
func WithCellStyler(f CellStyler) Option { return func(m *Model) { m.styler = f } }

// WithEmpty sets the text shown when no row matches.
func WithEmpty(s string) Option { return func(m *Model) { m.empty = s } }

// WithSort sets the initial sort column and direction.
func WithSort(col int, desc bool) Option { return func(m *Model) { m.sortCol, m.desc = col, desc } }

// New returns a table with the given columns.
func New(cols []Column, opts ...Option) Model {
	m := Model{
		KeyMap: DefaultKeyMap(),
		cols:   cols,
		index:  map[string]int{},
		styles: style.Plain(),
		empty:  "nothing here",
		width:  80,
		height: 10,
	}
	for _, c := range cols {
		m.rcols = append(m.rcols, c.Column)
	}
	for _, o := range opts {
		o(&m)
	}
	m.relayout()
	return m
}

// relayout computes the column widths: Key columns ask for their longest
// cell, so Layout drops trailing columns before it cuts a name.
func (m *Model) relayout(extra ...*Row) {
	cols := slices.Clone(m.rcols)
	for i, c := range m.cols {
		if !c.Key {
			continue
		}
		w := ansi.StringWidth(c.Title) + 1
		for r := range m.rows {
			w = max(w, ansi.StringWidth(cell(&m.rows[r], i)))
		}
		for _, r := range extra {
			w = max(w, ansi.StringWidth(cell(r, i)))
		}
		// The longest name, not the configured minimum: short names leave
		// room for more columns.
		cols[i].Min = min(w, MaxKey)
	}
	m.widths = render.Layout(cols, m.width-Gutter)
}

// SetSize sets the table's size in cells, header line included.
func (m *Model) SetSize(w, h int) {
	m.width, m.height = max(w, Gutter+1), max(h, 2)
	m.relayout()
	m.clampOffset()
}

// SetRows replaces every row, keeping the selection on the same id.
func (m *Model) SetRows(rows []Row) {
	sel := m.selectedID()
	m.rows = rows
	clear(m.index)
	for i := range m.rows {
		m.rows[i].search = searchKey(m.rows[i].Cells)
		m.index[m.rows[i].ID] = i
	}
	m.relayout()
	m.refresh(sel)
}

// Upsert adds or replaces one row. The common cases (a row changes without
// moving, a row is added) cost a binary search, not a re-sort, so a
// 10,000-row list keeps up with a stream of events.
func (m *Model) Upsert(r Row) {
	r.search = searchKey(r.Cells)
	m.growKeys(&r)
	i, ok := m.index[r.ID]
	if !ok {
		i = len(m.rows)
		m.index[r.ID] = i
		m.rows = append(m.rows, r)
		m.insertView(i)
		return
	}
	old := m.rows[i]
	m.rows[i] = r
	if m.compareRows(&old, &r) != 0 {
		m.refresh(m.selectedID())
		return
	}
	if wasIn := m.filter == "" || strings.Contains(old.search, m.filter); wasIn != m.matches(i) {
		m.refilter(m.selectedID())
	}
}

// growKeys re-lays out when r's name is wider than its Key column; a
// narrower one leaves the layout alone until the next SetRows, so an event
// stream costs no per-row scan.
func (m *Model) growKeys(r *Row) {
	for i, c := range m.cols {
		if c.Key && i < len(m.widths) && ansi.StringWidth(cell(r, i)) > m.widths[i] && m.widths[i] < MaxKey {
			m.relayout(r)
			return
		}
	}
}

func (m *Model) matches(i int) bool {
	return m.filter == "" || strings.Contains(m.rows[i].search, m.filter)
}

// insertView puts the new row i into the sorted order and, when it passes
// the filter, into the view, keeping the cursor on the row it was on.
func (m *Model) insertView(i int) {
	pos, _ := slices.BinarySearchFunc(m.order, i, m.compare)
	m.order = slices.Insert(m.order, pos, i)
	if !m.matches(i) {
		return
	}
	vpos, _ := slices.BinarySearchFunc(m.view, i, m.compare)
	m.view = slices.Insert(m.view, vpos, i)
	if vpos <= m.cursor && len(m.view) > 1 {
		m.cursor++
	}
	m.clampOffset()
}

// Remove deletes the row with id, if any.
func (m *Model) Remove(id string) {
	i, ok := m.index[id]
	if !ok {
		return
	}
	sel := m.selectedID()
	last := len(m.rows) - 1
	m.rows[i] = m.rows[last]
	m.index[m.rows[i].ID] = i
	m.rows = m.rows[:last]
	delete(m.index, id)
	m.refresh(sel)
}

// Len is the number of rows (before filtering).
func (m Model) Len() int { return len(m.rows) }

// Visible is the number of rows that pass the filter.
func (m Model) Visible() int { return len(m.view) }

// SetFilter sets the live filter (case-insensitive substring of any cell).
func (m *Model) SetFilter(f string) {
	sel := m.selectedID()
	m.filter = strings.ToLower(f)
	m.refilter(sel)
}

// Filter returns the current filter.
func (m Model) Filter() string { return m.filter }

// Sort returns the sort column and whether it is descending.
func (m Model) Sort() (col int, desc bool) { return m.sortCol, m.desc }

// SortBy sorts by column col.
func (m *Model) SortBy(col int, desc bool) {
	if col < 0 || col >= len(m.cols) {
		return
	}
	sel := m.selectedID()
	m.sortCol, m.desc = col, desc
	m.refresh(sel)
}

// Selected returns the row under the cursor.
func (m Model) Selected() (Row, bool) {
	if m.cursor < 0 || m.cursor >= len(m.view) {
		return Row{}, false
	}
	return m.rows[m.view[m.cursor]], true
}

// Select moves the cursor to the row with id and reports whether it is shown.
func (m *Model) Select(id string) bool {
	for vi, ri := range m.view {
		if m.rows[ri].ID == id {
			m.cursor = vi
			m.clampOffset()
			return true
		}
	}
	return false
}

func (m Model) selectedID() string {
	if r, ok := m.Selected(); ok {
		return r.ID
	}
	return ""
}

func searchKey(cells []string) string {
	return strings.ToLower(strings.Join(cells, "\x00"))
}

// refresh re-sorts every row and refilters, putting the cursor back on sel
// when it is still shown.
func (m *Model) refresh(sel string) {
	m.order = m.order[:0]
	for i := range m.rows {
		m.order = append(m.order, i)
	}
	slices.SortFunc(m.order, m.compare)
	m.refilter(sel)
}

// refilter recomputes the view from the sorted order.
func (m *Model) refilter(sel string) {
	m.view = m.view[:0]
	for _, i := range m.order {
		if m.matches(i) {
			m.view = append(m.view, i)
		}
	}
	if sel == "" || !m.Select(sel) {
		m.cursor = min(m.cursor, max(len(m.view)-1, 0))
	}
	m.clampOffset()
}

// compare orders rows a and b by the sort column, ties by the first
// column (the name) and then by id, so the order is total and stable
// across refreshes.
func (m *Model) compare(a, b int) int {
	return m.compareRows(&m.rows[a], &m.rows[b])
}

func (m *Model) compareRows(ra, rb *Row) int {
	col := m.sortCol
	var c int
	if col < len(m.cols) && m.cols[col].Numeric {
		c = cmp.Compare(num(ra, col), num(rb, col))
	} else {
		c = strings.Compare(cell(ra, col), cell(rb, col))
	}
	if m.desc {
		c = -c
	}
	// Ties read in name order whichever way the column sorts.
	if c == 0 && col != 0 {
		c = strings.Compare(cell(ra, 0), cell(rb, 0))
	}
	if c == 0 {
		c = strings.Compare(ra.ID, rb.ID)
	}
	return c
}

func num(r *Row, i int) float64 {
	if i < len(r.Nums) {
		return r.Nums[i]
	}
	return 0
}

func cell(r *Row, i int) string {
	if i < len(r.Cells) {
		return r.Cells[i]
	}
	return ""
}

func (m *Model) pageSize() int { return max(m.height-1, 1) }

func (m *Model) clampOffset() {
	ps := m.pageSize()
	if m.cursor < m.offset {
		m.offset = m.cursor
	}
	if m.cursor >= m.offset+ps {
		m.offset = m.cursor - ps + 1
	}
	m.offset = max(min(m.offset, len(m.view)-ps), 0)
}

func (m *Model) move(delta int) {
	m.cursor = max(min(m.cursor+delta, len(m.view)-1), 0)
	m.clampOffset()
}

// Update handles navigation and sorting keys; other messages are ignored.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch {
	case key.Matches(km, m.KeyMap.Up):
		m.move(-1)
	case key.Matches(km, m.KeyMap.Down):
		m.move(1)
	case key.Matches(km, m.KeyMap.PageUp):
		m.move(-m.pageSize())
	case key.Matches(km, m.KeyMap.PageDown):
		m.move(m.pageSize())
	case key.Matches(km, m.KeyMap.Home):
		m.move(-len(m.view))
	case key.Matches(km, m.KeyMap.End):
		m.move(len(m.view))
	case key.Matches(km, m.KeyMap.SortNext):
		m.SortBy((m.sortCol+1)%len(m.cols), m.desc)
	case key.Matches(km, m.KeyMap.SortPrev):
		m.SortBy((m.sortCol+len(m.cols)-1)%len(m.cols), m.desc)
	case key.Matches(km, m.KeyMap.SortReverse):
		m.SortBy(m.sortCol, !m.desc)
	}
	return m, nil
}

// View draws the header and the visible window of rows, exactly height
// lines of width cells.
func (m Model) View() string {
	var b strings.Builder
	b.Grow((m.width + 1) * m.height * 2)
	b.WriteString(m.header())
	lines := 1
	end := min(m.offset+m.pageSize(), len(m.view))
	for vi := m.offset; vi < end; vi++ {
		b.WriteByte('\n')
		b.WriteString(m.line(&m.rows[m.view[vi]], vi == m.cursor))
		lines++
	}
	if len(m.view) == 0 {
		b.WriteByte('\n')
		b.WriteString(m.styles.Dim.Render(render.Fit(noMarker+m.empty, m.width)))
		lines++
	}
	for ; lines < m.height; lines++ {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", m.width))
	}
	return b.String()
}

func (m Model) header() string {
	titles := make([]string, len(m.cols))
	for i, c := range m.cols {
		titles[i] = c.Title
		if i == m.sortCol && i < len(m.widths) {
			// The arrow is kept and the title cut, however narrow.
			arrow := "↑"
			if m.desc {
				arrow = "↓"
			}
			titles[i] = render.Truncate(c.Title, m.widths[i]-1) + arrow
		}
	}
	hdr := noMarker + render.Row(titles, m.rcols, m.widths)
	if m.sortCol < len(m.widths) && m.widths[m.sortCol] == 0 {
		// The sort column is hidden at this width: say what sorts.
		by := " by " + m.SortTitle()
		hdr = render.Fit(hdr, max(m.width-ansi.StringWidth(by), 0)) + by
	}
	return m.styles.Header.Render(render.Fit(hdr, m.width))
}

// SortTitle is the sort column's title with its direction arrow.
func (m Model) SortTitle() string {
	if m.sortCol >= len(m.cols) {
		return ""
	}
	if m.desc {
		return m.cols[m.sortCol].Title + "↓"
	}
	return m.cols[m.sortCol].Title + "↑"
}

func (m Model) line(r *Row, selected bool) string {
	if selected || m.styler == nil {
		gutter := noMarker
		if selected {
			gutter = CursorMarker
		}
		s := render.Fit(gutter+render.Row(r.Cells, m.rcols, m.widths), m.width)
		if selected {
			return m.styles.Selected.Render(s)
		}
		return m.styles.Cell.Render(s)
	}
	var b strings.Builder
	b.WriteString(noMarker)
	used, first := Gutter, true
	for i, w := range m.widths {
		if w == 0 {
			continue
		}
		if !first {
			b.WriteByte(' ')
			used++
		}
		first = false
		c := cell(r, i)
		b.WriteString(m.styler(i, c).Render(render.FitCell(c, m.rcols, i, w)))
		used += w
	}
	if used < m.width {
		b.WriteString(strings.Repeat(" ", m.width-used))
	}
	return b.String()
}
