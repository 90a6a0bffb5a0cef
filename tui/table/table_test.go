package table

import (
	"fmt"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/require"

	"github.com/kubedoio/n-kudo/tui/render"
)

var testCols = []Column{
	{Column: render.Column{Title: "NAME", Min: 8, Flex: 1}},
	{Column: render.Column{Title: "STATE", Min: 8}},
	{Column: render.Column{Title: "CPU", Min: 3, Right: true}, Numeric: true},
}

func row(id, state string, cpu float64) Row {
	return Row{ID: id, Cells: []string{id, state, fmt.Sprint(cpu)}, Nums: []float64{0, 0, cpu}}
}

func ids(m Model) []string {
	out := make([]string, 0, len(m.view))
	for _, i := range m.view {
		out = append(out, m.rows[i].ID)
	}
	return out
}

func fixture() Model {
	m := New(testCols)
	m.SetSize(30, 5)
	m.SetRows([]Row{row("web-2", "running", 4), row("db-1", "stopped", 2), row("web-10", "Running", 16), row("cache", "unknown", 1)})
	return m
}

func TestFilterAndSort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter string
		col    int
		desc   bool
		want   []string
	}{
		{"by name", "", 0, false, []string{"cache", "db-1", "web-10", "web-2"}},
		{"by name reversed", "", 0, true, []string{"web-2", "web-10", "db-1", "cache"}},
		{"numeric column sorts by value", "", 2, false, []string{"cache", "db-1", "web-2", "web-10"}},
		{"filter is case-insensitive", "RUNNING", 0, false, []string{"web-10", "web-2"}},
		{"filter matches any cell", "1", 2, true, []string{"web-10", "db-1", "cache"}},
		{"no match", "zzz", 0, false, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := fixture()
			m.SortBy(tt.col, tt.desc)
			m.SetFilter(tt.filter)
			require.Equal(t, tt.want, ids(m))
		})
	}
}

func TestSelectionFollowsRow(t *testing.T) {
	t.Parallel()
	m := fixture()
	require.True(t, m.Select("web-2"))
	m.SortBy(2, false)
	r, ok := m.Selected()
	require.True(t, ok)
	require.Equal(t, "web-2", r.ID, "sorting keeps the selected row")
	m.Upsert(row("aaa", "running", 0))
	r, _ = m.Selected()
	require.Equal(t, "web-2", r.ID, "inserting before the cursor keeps the selected row")
	m.Upsert(row("web-2", "running", 99))
	r, _ = m.Selected()
	require.Equal(t, "web-2", r.ID, "a row that moves stays selected")
	require.Equal(t, "web-2", ids(m)[len(ids(m))-1])
	m.Remove("web-2")
	_, ok = m.Selected()
	require.True(t, ok, "removing the selected row selects a neighbour")
	require.Equal(t, 4, m.Len())
}

func TestUpsertKeepsOrder(t *testing.T) {
	t.Parallel()
	m := fixture()
	m.SetFilter("web")
	m.Upsert(row("web-0", "running", 3))
	m.Upsert(row("zzz", "stopped", 3))
	require.Equal(t, []string{"web-0", "web-10", "web-2"}, ids(m))
	// A change that makes a row match the filter brings it in.
	m.Upsert(Row{ID: "zzz", Cells: []string{"zzz", "web-ish", "3"}, Nums: []float64{0, 0, 3}})
	require.Equal(t, []string{"web-0", "web-10", "web-2", "zzz"}, ids(m))
	// In-place changes that do not move a row leave order alone.
	m.Upsert(row("web-10", "stopped", 1))
	require.Equal(t, []string{"web-0", "web-10", "web-2", "zzz"}, ids(m))
}

func TestNavigationAndKeys(t *testing.T) {
	t.Parallel()
	press := func(m Model, k string) Model {
		var msg tea.KeyMsg
		switch k {
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		m, _ = m.Update(msg)
		return m
	}
	tests := []struct {
		keys     []string
		selected string
		sortCol  int
		desc     bool
	}{
		{nil, "cache", 0, false},
		{[]string{"down", "down"}, "web-10", 0, false},
		{[]string{"down", "down", "down", "down", "down"}, "web-2", 0, false},
		{[]string{"up"}, "cache", 0, false},
		{[]string{"G"}, "web-2", 0, false},
		{[]string{"G", "g"}, "cache", 0, false},
		{[]string{">"}, "cache", 1, false},
		{[]string{"<"}, "cache", 2, false},
		{[]string{"S"}, "cache", 0, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.keys, ","), func(t *testing.T) {
			t.Parallel()
			m := fixture()
			for _, k := range tt.keys {
				m = press(m, k)
			}
			r, ok := m.Selected()
			require.True(t, ok)
			require.Equal(t, tt.selected, r.ID)
			col, desc := m.Sort()
			require.Equal(t, tt.sortCol, col)
			require.Equal(t, tt.desc, desc)
		})
	}
}

func TestViewWindow(t *testing.T) {
	t.Parallel()
	m := New(testCols)
	m.SetSize(26, 4)
	rows := make([]Row, 0, 100)
	for i := range 100 {
		rows = append(rows, row(fmt.Sprintf("vm-%03d", i), "running", float64(i)))
	}
	m.SetRows(rows)
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("G")})
	got := ansi.Strip(m.View())
	want := strings.Join([]string{
		"  NAME↑       STATE    CPU",
		"  vm-097      running   97",
		"  vm-098      running   98",
		"▶ vm-099      running   99",
	}, "\n")
	require.Equal(t, want, got)

	m.SetFilter("nothing")
	got = ansi.Strip(m.View())
	require.Len(t, strings.Split(got, "\n"), 4, "an empty table still fills its height")
	require.Contains(t, got, "nothing here")
}

// TestLayoutPriorities: a Key column widens to its longest name before a
// less important column is shown; the sort arrow survives any width and a
// hidden sort column is named; ties sort by name, then id.
func TestLayoutPriorities(t *testing.T) {
	t.Parallel()
	cols := []Column{
		{Column: render.Column{Title: "HOST", Min: 6, Flex: 1}, Key: true},
		{Column: render.Column{Title: "STATUS", Min: 7}},
		{Column: render.Column{Title: "LABEL", Min: 9}},
		{Column: render.Column{Title: "N", Min: 2, Right: true}, Numeric: true},
	}
	r := func(id, host string, n float64) Row {
		return Row{ID: id, Cells: []string{host, "online", "simulated", fmt.Sprint(n)}, Nums: []float64{0, 0, 0, n}}
	}
	m := New(cols)
	m.SetSize(2+16+1+7+1+5, 5)
	m.SetRows([]Row{r("3", "dev-agent-b-long", 1), r("1", "dev-agent-a-long", 1)})
	out := ansi.Strip(m.View())
	require.Contains(t, out, "dev-agent-a-long", "names are never cut while a label column is shown")
	require.NotContains(t, out, "simulated", "the less important column gives way")
	require.NotContains(t, out, "…")

	m.Upsert(r("2", "dev-agent-c-much-longer", 1))
	require.Contains(t, ansi.Strip(m.View()), "dev-agent-c-much-longer", "an upserted longer name widens the column")

	m.SortBy(3, true)
	require.Equal(t, []string{"1", "3", "2"}, ids(m), "equal values sort by name, then id")
	require.Contains(t, strings.Split(ansi.Strip(m.View()), "\n")[0], "by N↓", "a hidden sort column is named")

	m.SetSize(2+3+1+7, 5)
	m.SortBy(0, false)
	hdr := strings.Split(ansi.Strip(m.View()), "\n")[0]
	require.Contains(t, hdr, "↑", "the arrow survives a column narrower than its title")
}

// TestCursorMarkerWithoutColour: the selected row is marked in plain text,
// so it shows under NO_COLOR.
func TestCursorMarkerWithoutColour(t *testing.T) {
	t.Parallel()
	m := fixture()
	require.True(t, m.Select("db-1"))
	for _, l := range strings.Split(ansi.Strip(m.View()), "\n")[1:] {
		if strings.Contains(l, "db-1") {
			require.True(t, strings.HasPrefix(l, CursorMarker), "selected row %q", l)
		} else {
			require.False(t, strings.HasPrefix(l, CursorMarker), "unselected row %q", l)
		}
	}
}
