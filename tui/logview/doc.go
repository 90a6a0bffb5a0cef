// Package logview is the follow-mode log widget shared by execution logs and
// the VM serial console: it tails a data.Source stream, sticks to the bottom
// while following, pauses when you scroll up and resumes with F or end.
package logview
