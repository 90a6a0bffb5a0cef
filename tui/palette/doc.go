// Package palette is the `:` command line: a text input that completes
// command names as you type and reports the chosen line to its parent.
package palette
