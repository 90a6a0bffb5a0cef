package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/client"
)

// names resolves ids to display names in tables; unknown ids print in
// full: ids are UUIDv7, whose first characters are their creation time,
// so a shortened id would name every object made in the same minute
// alike (and the commands take full ids).
type names struct {
	sites map[uuid.UUID]string
	hosts map[uuid.UUID]client.Host
}

func (n names) site(id uuid.UUID) string {
	if s, ok := n.sites[id]; ok {
		return s
	}
	return id.String()
}

// host names a host, labelling simulated ones so nobody mistakes a sim
// VM for a real one.
func (n names) host(id uuid.UUID) string {
	if id == uuid.Nil {
		return "-"
	}
	h, ok := n.hosts[id]
	if !ok {
		return id.String()
	}
	if h.Simulated() {
		return h.Hostname + " [simulated]"
	}
	return h.Hostname
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanSince renders t relative to now: "45s ago", "3h ago", "in 23h".
func humanSince(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	d := now.Sub(*t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	return humanDuration(d) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

func row(tw *tabwriter.Writer, cols ...string) {
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

func renderTenants(w io.Writer, now time.Time, items []client.Tenant) error {
	tw := newTable(w, "ID", "NAME", "AGE")
	for _, t := range items {
		row(tw, t.ID.String(), t.Name, humanDuration(now.Sub(t.CreatedAt)))
	}
	return tw.Flush()
}

func renderSites(w io.Writer, now time.Time, items []client.Site) error {
	tw := newTable(w, "ID", "NAME", "NETBIRD", "DESCRIPTION", "AGE")
	for _, s := range items {
		nb := "off"
		if s.NetBird.Enabled {
			nb = "on"
			if len(s.NetBird.Groups) > 0 {
				nb += " (" + strings.Join(s.NetBird.Groups, ",") + ")"
			}
		}
		row(tw, s.ID.String(), s.Name, nb, dash(s.Description), humanDuration(now.Sub(s.CreatedAt)))
	}
	return tw.Flush()
}

func renderHosts(w io.Writer, now time.Time, n names, items []client.Host) error {
	tw := newTable(w, "ID", "HOSTNAME", "SITE", "STATUS", "LAST SEEN", "HYPERVISOR", "CPUS", "MEMORY", "NETBIRD")
	for _, h := range items {
		status := "offline"
		if h.Online {
			status = "online"
		}
		hv := dash(h.Facts.Hypervisor.Kind)
		if h.Simulated() {
			hv = "sim [simulated]"
		}
		if h.Facts.Hypervisor.Unavailable != "" {
			hv += " [unavailable: " + h.Facts.Hypervisor.Unavailable + "]"
		}
		nb := dash(h.NetBird.State)
		if h.NetBird.IP != "" {
			nb += " " + h.NetBird.IP
		}
		mem := "-"
		if h.Facts.MemoryTotalBytes > 0 {
			mem = humanBytes(h.Facts.MemoryTotalBytes)
		}
		row(tw, h.ID.String(), h.Hostname, n.site(h.SiteID), status, humanSince(now, h.LastSeenAt), hv,
			fmt.Sprint(h.Facts.CPUCores), mem, nb)
	}
	return tw.Flush()
}

func renderAgents(w io.Writer, now time.Time, n names, items []client.Agent) error {
	tw := newTable(w, "ID", "HOST", "SITE", "STATUS", "VERSION", "LAST SEEN", "CERT EXPIRES")
	for _, g := range items {
		row(tw, g.ID.String(), n.host(g.HostID), n.site(g.SiteID), g.Status, dash(g.Version),
			humanSince(now, g.LastSeenAt), humanSince(now, &g.CertExpiresAt))
	}
	return tw.Flush()
}

// renderVMs marks drift (desired and actual disagree for real, not in
// transition) with a "!" column so it stands out in a long list.
func renderVMs(w io.Writer, now time.Time, n names, items []client.VM) error {
	tw := newTable(w, "ID", "NAME", "SITE", "HOST", "DESIRED", "ACTUAL", "DRIFT", "VCPUS", "MEMORY", "AGE")
	for _, v := range items {
		drift := ""
		if v.Drift {
			drift = "!"
		}
		row(tw, v.ID.String(), v.Name, n.site(v.SiteID), n.host(v.HostID), v.DesiredState, dash(v.ActualState), drift,
			fmt.Sprint(v.VCPUs), fmt.Sprintf("%dMiB", v.MemoryMiB), humanDuration(now.Sub(v.CreatedAt)))
	}
	return tw.Flush()
}

func renderPlans(w io.Writer, now time.Time, n names, items []client.Plan) error {
	tw := newTable(w, "ID", "SITE", "HOST", "STATUS", "ACTIONS", "DONE", "AGE")
	for _, p := range items {
		types := make([]string, 0, len(p.Actions))
		done := 0
		for _, act := range p.Actions {
			types = append(types, act.Type)
			if client.Terminal(act.Status) {
				done++
			}
		}
		row(tw, p.ID.String(), n.site(p.SiteID), n.host(p.HostID), p.Status, dash(strings.Join(types, ",")),
			fmt.Sprintf("%d/%d", done, len(p.Actions)), humanDuration(now.Sub(p.CreatedAt)))
	}
	return tw.Flush()
}
