// Package execlog holds the agent's outbound execution log lines until the
// server acknowledges them.
//
// Lines are numbered 1, 2, 3… per execution as they are appended, but only
// lines made durable by Flush are handed out for sending. That rule keeps
// numbering consistent across an agent crash: the server never sees a seq
// the agent could hand out again after restarting (the server skips a
// repeated seq, so a reused number would silently lose a line).
//
// The buffer is bounded: past MaxLines the oldest unacknowledged lines are
// dropped (and counted), because an agent cut off from its server for days
// must not fill the disk with logs nobody will read.
package execlog
