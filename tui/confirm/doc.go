// Package confirm is the yes/no dialog in front of destructive actions. It
// defaults to "no" so a stray enter never deletes anything.
package confirm
