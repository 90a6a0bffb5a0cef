package form

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/kubedoio/n-kudo/internal/vmspec"
	"github.com/kubedoio/n-kudo/tui/data"
	"github.com/kubedoio/n-kudo/tui/style"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid input")

// SubmitMsg carries a validated spec.
type SubmitMsg struct{ Spec data.VMSpec }

// CancelMsg says the form was dismissed.
type CancelMsg struct{}

// Field indexes.
const (
	FieldName = iota
	FieldSite
	FieldHost
	FieldVCPUs
	FieldMemory
	FieldDisk
	fieldCount
)

var labels = [fieldCount]string{"Name", "Site", "Host", "vCPUs", "Memory MiB", "Disk image"}

// KeyMap is the form's keys.
type KeyMap struct {
	Next, Prev, Submit, Cancel key.Binding
}

// DefaultKeyMap moves with tab/shift+tab and submits with enter on the last
// field (or ctrl+s anywhere).
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Next:   key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next field")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "previous field")),
		Submit: key.NewBinding(key.WithKeys("enter", "ctrl+s"), key.WithHelp("enter", "next / create")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}

// ShortHelp implements help.KeyMap.
func (k KeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Next, k.Submit, k.Cancel} }

// FullHelp implements help.KeyMap.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Next, k.Prev, k.Submit, k.Cancel}}
}

// Model is the form.
type Model struct {
	KeyMap KeyMap
	inputs [fieldCount]textinput.Model
	focus  int
	sites  []data.Site
	hosts  []data.Host
	err    error
	width  int
	styles style.Styles
}

// Options are what a form knows before the operator types.
type Options struct {
	// Sites and Hosts feed completion and name → id resolution.
	Sites []data.Site
	Hosts []data.Host
	// Site and Host (names or ids, may be empty) pre-fill their fields:
	// the site the form was opened from, the host selected.
	Site, Host string
}

// New returns a form. With only one site, that site is implied. The host
// may stay empty: the server then places the VM on the least loaded
// online host of the site.
func New(o Options, st style.Styles) Model {
	m := Model{KeyMap: DefaultKeyMap(), sites: o.Sites, hosts: o.Hosts, styles: st, width: 80}
	hostNames := make([]string, 0, len(o.Hosts))
	for _, h := range o.Hosts {
		hostNames = append(hostNames, h.Hostname)
	}
	siteNames := make([]string, 0, len(o.Sites))
	for _, s := range o.Sites {
		siteNames = append(siteNames, s.Name)
	}
	site := o.Site
	if site == "" && len(o.Sites) == 1 {
		site = o.Sites[0].Name
	}
	for i := range m.inputs {
		in := textinput.New()
		in.Prompt = ""
		in.Cursor.SetMode(cursor.CursorStatic)
		in.CharLimit = 253
		m.inputs[i] = in
	}
	m.inputs[FieldName].Placeholder = "e.g. web-3"
	m.inputs[FieldSite].SetValue(site)
	m.inputs[FieldSite].ShowSuggestions = true
	m.inputs[FieldSite].SetSuggestions(siteNames)
	m.inputs[FieldHost].SetValue(o.Host)
	m.inputs[FieldHost].Placeholder = "empty: the server picks"
	m.inputs[FieldHost].ShowSuggestions = true
	m.inputs[FieldHost].SetSuggestions(hostNames)
	m.inputs[FieldVCPUs].SetValue("1")
	m.inputs[FieldMemory].SetValue("512")
	m.inputs[FieldDisk].Placeholder = "e.g. /var/lib/nkudo/images/alpine.raw"
	m.inputs[FieldName].Focus()
	return m
}

// SetSize sets the width.
func (m *Model) SetSize(w, _ int) {
	m.width = w
	for i := range m.inputs {
		m.inputs[i].Width = max(min(w-20, 48), 8)
	}
}

// SetValue fills a field (tests and pre-filling).
func (m *Model) SetValue(field int, v string) { m.inputs[field].SetValue(v) }

// Err is the last validation error.
func (m Model) Err() error { return m.err }

// Validate turns field values into a spec, resolving the site and host
// by name or id. An empty host leaves HostID empty (the server places the
// VM); a host decides the site, and a site given with it must agree.
func Validate(values [fieldCount]string, sites []data.Site, hosts []data.Host) (data.VMSpec, error) {
	var spec data.VMSpec
	spec.Name = strings.TrimSpace(values[FieldName])
	if err := vmspec.CheckName(spec.Name); err != nil {
		return spec, invalid(err)
	}
	sn := strings.TrimSpace(values[FieldSite])
	var site data.Site
	if sn != "" {
		found := false
		for _, s := range sites {
			if s.Name == sn || s.ID == sn {
				site, found = s, true
				break
			}
		}
		if !found {
			return spec, fmt.Errorf("site %q: no such site: %w", sn, ErrInvalid)
		}
	}
	hn := strings.TrimSpace(values[FieldHost])
	switch {
	case hn != "":
		found := false
		for _, h := range hosts {
			if h.Hostname == hn || h.ID == hn {
				spec.HostID, spec.SiteID, found = h.ID, h.SiteID, true
				break
			}
		}
		if !found {
			return spec, fmt.Errorf("host %q: no such host: %w", hn, ErrInvalid)
		}
		if site.ID != "" && site.ID != spec.SiteID {
			return spec, fmt.Errorf("host %q is not in site %q: %w", hn, site.Name, ErrInvalid)
		}
	case site.ID == "":
		return spec, fmt.Errorf("site: required when no host is given: %w", ErrInvalid)
	default:
		spec.SiteID = site.ID
	}
	n, err := strconv.Atoi(strings.TrimSpace(values[FieldVCPUs]))
	if err != nil {
		return spec, fmt.Errorf("vcpus %q: a whole number from %d to %d: %w", values[FieldVCPUs], vmspec.MinVCPUs, vmspec.MaxVCPUs, ErrInvalid)
	}
	if err := vmspec.CheckVCPUs(n); err != nil {
		return spec, invalid(err)
	}
	spec.VCPUs = n
	n, err = strconv.Atoi(strings.TrimSpace(values[FieldMemory]))
	if err != nil {
		return spec, fmt.Errorf("memory %q: MiB from %d to %d: %w", values[FieldMemory], vmspec.MinMemoryMiB, vmspec.MaxMemoryMiB, ErrInvalid)
	}
	if err := vmspec.CheckMemoryMiB(n); err != nil {
		return spec, invalid(err)
	}
	spec.MemoryMiB = n
	spec.DiskImage = strings.TrimSpace(values[FieldDisk])
	if err := vmspec.CheckHostPath(vmspec.FieldDiskImage, spec.DiskImage); err != nil {
		return spec, invalid(err)
	}
	return spec, nil
}

// invalid marks a vmspec problem as the form's ErrInvalid; the form checks
// with the server's own rule (internal/vmspec), so what it accepts the
// server accepts.
func invalid(err error) error { return fmt.Errorf("%v: %w", err, ErrInvalid) }

func (m *Model) setFocus(i int) tea.Cmd {
	m.inputs[m.focus].Blur()
	m.focus = (i + fieldCount) % fieldCount
	return m.inputs[m.focus].Focus()
}

func (m Model) values() [fieldCount]string {
	var v [fieldCount]string
	for i := range m.inputs {
		v[i] = m.inputs[i].Value()
	}
	return v
}

// Outcome is what a key did to the form.
type Outcome int

// Outcomes of Handle.
const (
	Editing Outcome = iota
	Submitted
	Cancelled
)

// Handle applies a key and reports whether it submitted a valid spec or
// cancelled the form. Parents that must act before the next key call it
// instead of waiting for SubmitMsg or CancelMsg.
func (m *Model) Handle(msg tea.Msg) (Outcome, data.VMSpec, tea.Cmd) {
	if km, ok := msg.(tea.KeyMsg); ok {
		switch {
		case key.Matches(km, m.KeyMap.Cancel):
			return Cancelled, data.VMSpec{}, nil
		case key.Matches(km, m.KeyMap.Submit) && (m.focus == fieldCount-1 || km.String() == "ctrl+s"):
			spec, err := Validate(m.values(), m.sites, m.hosts)
			m.err = err
			if err != nil {
				return Editing, spec, nil
			}
			return Submitted, spec, nil
		case key.Matches(km, m.KeyMap.Submit):
			return Editing, data.VMSpec{}, m.setFocus(m.focus + 1)
		case km.String() == "tab" && (m.focus == FieldHost || m.focus == FieldSite) && m.inputs[m.focus].Value() != "" &&
			m.inputs[m.focus].CurrentSuggestion() != "" && m.inputs[m.focus].CurrentSuggestion() != m.inputs[m.focus].Value():
			// Tab completes a site or host name first, then moves on.
		case key.Matches(km, m.KeyMap.Next):
			return Editing, data.VMSpec{}, m.setFocus(m.focus + 1)
		case key.Matches(km, m.KeyMap.Prev):
			return Editing, data.VMSpec{}, m.setFocus(m.focus - 1)
		}
	}
	var cmd tea.Cmd
	m.inputs[m.focus], cmd = m.inputs[m.focus].Update(msg)
	return Editing, data.VMSpec{}, cmd
}

// Update handles keys and reports the outcome as SubmitMsg or CancelMsg.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	out, spec, cmd := m.Handle(msg)
	switch out {
	case Submitted:
		return m, func() tea.Msg { return SubmitMsg{Spec: spec} }
	case Cancelled:
		return m, func() tea.Msg { return CancelMsg{} }
	}
	return m, cmd
}

// View draws the form in a box.
func (m Model) View() string {
	rows := []string{m.styles.Title.Render("Create VM"), ""}
	for i, in := range m.inputs {
		label := fmt.Sprintf("%-11s", labels[i])
		if i == m.focus {
			label = m.styles.Accent.Render("› " + label)
		} else {
			label = "  " + label
		}
		rows = append(rows, label+" "+in.View())
	}
	rows = append(rows, "")
	if m.err != nil {
		rows = append(rows, m.styles.Error.Render(m.err.Error()))
	} else {
		rows = append(rows, m.styles.Dim.Render("tab next · enter on last field creates · esc cancels"))
	}
	return m.styles.Modal.Render(lipgloss.JoinVertical(lipgloss.Left, rows...))
}
