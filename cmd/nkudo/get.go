package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubedoio/n-kudo/internal/client"
)

var getKinds = map[string]client.Collection{
	"tenants": client.Tenants, "sites": client.Sites, "hosts": client.Hosts,
	"agents": client.Agents, "vms": client.VMs, "plans": client.Plans,
}

func kindNames() []string {
	out := make([]string, 0, len(getKinds))
	for k := range getKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (a *app) getCmd() *cobra.Command {
	var output, site string
	cmd := &cobra.Command{
		Use:   "get tenants|sites|hosts|agents|vms|plans",
		Short: "List objects as a table or as the API's JSON",
		Long: `get lists every object of a kind, following pagination to the end.

-o json prints exactly the API's list object {"items":[…],"next_cursor":""}
with all pages collected; -o table (the default) aligns columns for people:
relative times, a "!" in the DRIFT column when a VM's actual state
disagrees with its desired state, and [simulated] on hosts that run the
sim hypervisor. --site (id or name) narrows hosts, vms and plans.`,
		Args:      exactArgs(1, "a kind: "+strings.Join(kindNames(), ", ")),
		ValidArgs: kindNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			coll, ok := getKinds[args[0]]
			if !ok {
				return usagef("unknown kind %q: want one of %s", args[0], strings.Join(kindNames(), ", "))
			}
			if output != "table" && output != "json" {
				return usagef("-o %q: want table or json", output)
			}
			if site != "" && coll != client.Hosts && coll != client.VMs && coll != client.Plans {
				return usagef("--site applies to hosts, vms and plans only")
			}
			c, err := a.client(readAccess)
			if err != nil {
				return err
			}
			defer c.Close()
			return a.get(cmd.Context(), cmd.OutOrStdout(), c, coll, site, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&site, "site", "", "only objects of this site (id or name)")
	return cmd
}

func (a *app) get(ctx context.Context, w io.Writer, c *client.Client, coll client.Collection, site, output string) error {
	var f client.Filter
	if site != "" {
		s, err := resolveSite(ctx, c, site)
		if err != nil {
			return err
		}
		f.SiteID = s.ID
	}
	page, err := client.Collect(ctx, c.RawPages(coll, f))
	if err != nil {
		return err
	}
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(page)
	}
	now := a.now()
	var n names
	if coll != client.Tenants && coll != client.Sites {
		if n, err = tableNames(ctx, c, coll != client.Hosts); err != nil {
			return err
		}
	}
	switch coll {
	case client.Tenants:
		items, err := decodeItems[client.Tenant](page.Items)
		if err != nil {
			return err
		}
		return renderTenants(w, now, items)
	case client.Sites:
		items, err := decodeItems[client.Site](page.Items)
		if err != nil {
			return err
		}
		return renderSites(w, now, items)
	case client.Hosts:
		items, err := decodeItems[client.Host](page.Items)
		if err != nil {
			return err
		}
		return renderHosts(w, now, n, items)
	case client.Agents:
		items, err := decodeItems[client.Agent](page.Items)
		if err != nil {
			return err
		}
		return renderAgents(w, now, n, items)
	case client.VMs:
		items, err := decodeItems[client.VM](page.Items)
		if err != nil {
			return err
		}
		return renderVMs(w, now, n, items)
	case client.Plans:
		items, err := decodeItems[client.Plan](page.Items)
		if err != nil {
			return err
		}
		return renderPlans(w, now, n, items)
	}
	return fmt.Errorf("listing %s: no table for this kind", coll)
}

func decodeItems[T any](raw []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("decoding %T: %w", v, err)
		}
		out = append(out, v)
	}
	return out, nil
}
