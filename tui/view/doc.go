// Package view holds the console's resource lists (tenants, sites, hosts,
// VMs, plans, a plan's actions): their columns, the pure row builders that
// turn fleet objects into cells, and List, the page that keeps a table in
// step with the fleet model as events arrive.
package view
