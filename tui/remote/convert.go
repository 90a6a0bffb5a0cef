package remote

import (
	"github.com/kubedoio/n-kudo/internal/client"
	"github.com/kubedoio/n-kudo/tui/data"
)

func convTenant(t client.Tenant) data.Tenant {
	return data.Tenant{ID: t.ID.String(), Name: t.Name}
}

func convSite(s client.Site) data.Site {
	return data.Site{ID: s.ID.String(), Name: s.Name}
}

func convHost(h client.Host) data.Host {
	out := data.Host{
		ID:        h.ID.String(),
		SiteID:    h.SiteID.String(),
		Hostname:  h.Hostname,
		AgentID:   h.AgentID.String(),
		Online:    h.Online,
		NetBird:   data.NetBird{State: h.NetBird.State, IP: h.NetBird.IP},
		Simulated: h.Simulated(),

		HypervisorUnavailable: h.Facts.Hypervisor.Unavailable,
	}
	if h.LastSeenAt != nil {
		out.LastSeenAt = *h.LastSeenAt
	}
	if h.Usage != nil {
		out.Usage = &data.Usage{
			CPUPercent:       h.Usage.CPUPercent,
			MemoryUsedBytes:  nonNeg(h.Usage.MemoryUsedBytes),
			MemoryTotalBytes: nonNeg(h.Facts.MemoryTotalBytes),
		}
	}
	return out
}

func nonNeg(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func convVM(v client.VM) data.VM {
	return data.VM{
		ID:           v.ID.String(),
		Name:         v.Name,
		SiteID:       v.SiteID.String(),
		HostID:       v.HostID.String(),
		DesiredState: v.DesiredState,
		ActualState:  v.ActualState,
		VCPUs:        v.VCPUs,
		MemoryMiB:    v.MemoryMiB,
		Error:        v.Error,
	}
}

func convPlan(p client.Plan) data.Plan {
	out := data.Plan{ID: p.ID.String(), SiteID: p.SiteID.String(), Status: p.Status, CreatedAt: p.CreatedAt}
	for _, a := range p.Actions {
		da := data.Action{ID: a.ID.String(), Type: a.Type, Status: a.Status}
		if a.VMID != nil {
			da.VMID = a.VMID.String()
		}
		if a.ExecutionID != [16]byte{} {
			da.ExecutionID = a.ExecutionID.String()
		}
		out.Actions = append(out.Actions, da)
	}
	return out
}
