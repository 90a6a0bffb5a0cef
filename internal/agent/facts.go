package agent

import (
	"context"

	"github.com/kubedoio/n-kudo/internal/agent/hostfacts"
	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// HostFacts is the production FactSource, reading the host through
// internal/agent/hostfacts.
type HostFacts struct {
	opts    hostfacts.Options
	sampler *hostfacts.Sampler
}

// NewHostFacts returns a FactSource for the host described by opts.
func NewHostFacts(opts hostfacts.Options) *HostFacts {
	return &HostFacts{opts: opts, sampler: hostfacts.NewSampler(opts)}
}

// Facts implements FactSource.
func (h *HostFacts) Facts(ctx context.Context) (agentproto.HostFacts, error) {
	return hostfacts.Collect(ctx, h.opts)
}

// Usage implements FactSource.
func (h *HostFacts) Usage(ctx context.Context) (agentproto.Usage, error) {
	return h.sampler.Usage(ctx)
}
