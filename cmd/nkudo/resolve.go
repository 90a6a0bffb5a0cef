package main

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/client"
)

// Objects are named on the command line by id or by unique name; names
// are what people remember, ids are what scripts hold.

func resolveSite(ctx context.Context, c *client.Client, ref string) (client.Site, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return c.GetSite(ctx, id)
	}
	return findOne(c.AllSites(ctx), "site", ref, func(s client.Site) string { return s.Name })
}

func resolveHost(ctx context.Context, c *client.Client, site uuid.UUID, ref string) (client.Host, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return c.GetHost(ctx, id)
	}
	return findOne(c.AllHosts(ctx, client.Filter{SiteID: site}), "host", ref, func(h client.Host) string { return h.Hostname })
}

func resolveVM(ctx context.Context, c *client.Client, ref string) (client.VM, error) {
	if id, err := uuid.Parse(ref); err == nil {
		return c.GetVM(ctx, id)
	}
	return findOne(c.AllVMs(ctx, client.Filter{}), "vm", ref, func(v client.VM) string { return v.Name })
}

// findOne returns the single item called name, errNotFound when there is
// none, and an error listing the candidates when the name is ambiguous.
func findOne[T any](items func(func(T, error) bool), kind, name string, nameOf func(T) string) (T, error) {
	var found []T
	for item, err := range items {
		if err != nil {
			var zero T
			return zero, err
		}
		if nameOf(item) == name {
			found = append(found, item)
		}
	}
	var zero T
	switch len(found) {
	case 0:
		return zero, fmt.Errorf("%w: no %s named %q", errNotFound, kind, name)
	case 1:
		return found[0], nil
	default:
		return zero, fmt.Errorf("%d %ss are named %q: use the id", len(found), kind, name)
	}
}

// tableNames loads the sites and hosts a table refers to by id.
func tableNames(ctx context.Context, c *client.Client, withHosts bool) (names, error) {
	n := names{sites: map[uuid.UUID]string{}, hosts: map[uuid.UUID]client.Host{}}
	for s, err := range c.AllSites(ctx) {
		if err != nil {
			return n, err
		}
		n.sites[s.ID] = s.Name
	}
	if withHosts {
		for h, err := range c.AllHosts(ctx, client.Filter{}) {
			if err != nil {
				return n, err
			}
			n.hosts[h.ID] = h
		}
	}
	return n, nil
}
