// Package fleet is the console's model of one tenant's fleet: the last listed
// sites, hosts, VMs and plans, kept current by applying events from the live
// stream, plus what only the console remembers (recent host usage for
// sparklines, the latest plan touching each VM). It does no I/O and holds no
// goroutines: the bubbletea loop owns it and feeds it messages.
package fleet
