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
	"github.com/kubedoio/n-kudo/tui/render"
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

// FieldError is a problem with one field of the form.
type FieldError struct {
	Field int
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }

// Unwrap returns the problem (which wraps ErrInvalid).
func (e *FieldError) Unwrap() error { return e.Err }

// FieldOf is the form field err is about, or -1.
func FieldOf(err error) int {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return -1
}

// Validate turns field values into a spec, resolving the site and host
// by name or id. An empty host leaves HostID empty (the server places the
// VM); a host decides the site, and a site given with it must agree. The
// error is a *FieldError naming the first field in error.
func Validate(values [fieldCount]string, sites []data.Site, hosts []data.Host) (data.VMSpec, error) {
	var spec data.VMSpec
	for f := range fieldCount {
		if err := check(f, values, sites, hosts, &spec); err != nil {
			return spec, &FieldError{Field: f, Err: err}
		}
	}
	return spec, nil
}

// check validates one field into spec, with the server's own rules
// (internal/vmspec) so what the form accepts the server accepts.
func check(f int, values [fieldCount]string, sites []data.Site, hosts []data.Host, spec *data.VMSpec) error {
	v := strings.TrimSpace(values[f])
	switch f {
	case FieldName:
		spec.Name = v
		return invalid(vmspec.CheckName(v))
	case FieldSite:
		site, err := findSite(v, sites)
		spec.SiteID = site.ID
		return err
	case FieldHost:
		return checkHost(v, values, sites, hosts, spec)
	case FieldVCPUs:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("vcpus %q: a whole number from %d to %d: %w", v, vmspec.MinVCPUs, vmspec.MaxVCPUs, ErrInvalid)
		}
		spec.VCPUs = n
		return invalid(vmspec.CheckVCPUs(n))
	case FieldMemory:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("memory %q: MiB from %d to %d: %w", v, vmspec.MinMemoryMiB, vmspec.MaxMemoryMiB, ErrInvalid)
		}
		spec.MemoryMiB = n
		return invalid(vmspec.CheckMemoryMiB(n))
	case FieldDisk:
		spec.DiskImage = v
		return invalid(vmspec.CheckHostPath(vmspec.FieldDiskImage, v))
	}
	return nil
}

func findSite(name string, sites []data.Site) (data.Site, error) {
	if name == "" {
		return data.Site{}, nil
	}
	for _, s := range sites {
		if s.Name == name || s.ID == name {
			return s, nil
		}
	}
	return data.Site{}, fmt.Errorf("site %q: no such site: %w", name, ErrInvalid)
}

func checkHost(hn string, values [fieldCount]string, sites []data.Site, hosts []data.Host, spec *data.VMSpec) error {
	site, _ := findSite(strings.TrimSpace(values[FieldSite]), sites)
	switch {
	case hn != "":
		for _, h := range hosts {
			if h.Hostname == hn || h.ID == hn {
				spec.HostID, spec.SiteID = h.ID, h.SiteID
				if site.ID != "" && site.ID != h.SiteID {
					return fmt.Errorf("host %q is not in site %q: %w", hn, site.Name, ErrInvalid)
				}
				return nil
			}
		}
		return fmt.Errorf("host %q: no such host: %w", hn, ErrInvalid)
	case site.ID == "":
		return fmt.Errorf("site: required when no host is given: %w", ErrInvalid)
	}
	spec.SiteID = site.ID
	return nil
}

// invalid marks a vmspec problem as the form's ErrInvalid.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%v: %w", err, ErrInvalid)
}

// serverFields maps the field names in the server's messages (vmspec's
// JSON names) to form fields.
var serverFields = []struct {
	name  string
	field int
}{
	{vmspec.FieldMemoryMiB, FieldMemory}, {vmspec.FieldVCPUs, FieldVCPUs},
	{vmspec.FieldDiskImage, FieldDisk}, {vmspec.FieldName, FieldName},
}

// SetServerError shows the server's refusal at the field it names (its
// messages name vmspec fields; name_taken is the name's; no online host
// is the host's) and moves the focus there; input stays as typed.
func (m *Model) SetServerError(err error) tea.Cmd {
	field := -1
	msg := err.Error()
	switch code := data.Reason(err); {
	case code == "name_taken":
		field = FieldName
	case strings.Contains(msg, "online"):
		field = FieldHost
	default:
		for _, f := range serverFields {
			if strings.Contains(msg, f.name+" ") {
				field = f.field
				break
			}
		}
	}
	if r, ok := data.Refused(err); ok {
		msg = r.Message + " (" + r.Code + ")"
	}
	m.err = &FieldError{Field: field, Err: errors.New("server: " + msg)}
	if field < 0 {
		return nil
	}
	return m.setFocus(field)
}

// leave checks the field being left, so a bad value is flagged where it
// was typed, and moves to field i.
func (m *Model) leave(i int) tea.Cmd {
	var spec data.VMSpec
	m.err = nil
	if err := check(m.focus, m.values(), m.sites, m.hosts, &spec); err != nil {
		m.err = &FieldError{Field: m.focus, Err: err}
	}
	return m.setFocus(i)
}

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
				return Editing, spec, m.setFocus(FieldOf(err))
			}
			return Submitted, spec, nil
		case key.Matches(km, m.KeyMap.Submit):
			return Editing, data.VMSpec{}, m.leave(m.focus + 1)
		case km.String() == "tab" && (m.focus == FieldHost || m.focus == FieldSite) && m.inputs[m.focus].Value() != "" &&
			m.inputs[m.focus].CurrentSuggestion() != "" && m.inputs[m.focus].CurrentSuggestion() != m.inputs[m.focus].Value():
			// Tab completes a site or host name first, then moves on.
		case key.Matches(km, m.KeyMap.Next):
			return Editing, data.VMSpec{}, m.leave(m.focus + 1)
		case key.Matches(km, m.KeyMap.Prev):
			return Editing, data.VMSpec{}, m.leave(m.focus - 1)
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
		if m.err != nil && FieldOf(m.err) == i {
			rows = append(rows, m.styles.Error.Render("  ! "+render.Truncate(m.err.Error(), max(m.width-10, 20))))
		}
	}
	rows = append(rows, "")
	if m.err != nil && FieldOf(m.err) < 0 {
		rows = append(rows, m.styles.Error.Render(render.Truncate(m.err.Error(), max(m.width-8, 20))))
	} else {
		rows = append(rows, m.styles.Dim.Render("tab next · enter on last field creates · esc cancels"))
	}
	return m.styles.Modal.Render(lipgloss.JoinVertical(lipgloss.Left, rows...))
}
