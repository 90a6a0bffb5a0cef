// Package cloudinit builds the NoCloud seed image a microVM boots with:
// meta-data (instance id and host name), user-data (the operator's, or a
// minimal #cloud-config) and network-config (version 2: DHCP on the VM's
// MAC, or a static address), written as an ISO9660 image labelled "cidata".
//
// The image is produced in pure Go, with no mkisofs/genisoimage on the
// host, and byte-for-byte deterministic for the same input (fixed
// timestamps, sorted entries), so a re-run of an interrupted create writes
// the same seed and tests can pin it with a hash.
//
// # Image layout
//
// Sectors are 2048 bytes:
//
//	0-15    system area, zero
//	16      primary volume descriptor (volume id "cidata")
//	17      Joliet supplementary volume descriptor (UCS-2, escape "%/E")
//	18      volume descriptor set terminator
//	19, 20  primary path table, little- then big-endian
//	21, 22  Joliet path table, little- then big-endian
//	23      primary root directory
//	24      Joliet root directory
//	25...   file contents, each starting on a sector boundary
//
// Both directory trees list the same three files and point at the same
// extents. The Joliet tree carries the exact lowercase names cloud-init
// looks for ("meta-data", "user-data", "network-config"); Linux's isofs
// prefers it when present. The primary tree carries the same names in
// relaxed form (lowercase, '-', no ";1" version), as genisoimage writes
// them with -relaxed-filenames -allow-lowercase -omit-version-number, so
// readers that ignore Joliet (Linux mounted with nojoliet, most userspace
// ISO readers) see the same names too.
package cloudinit
