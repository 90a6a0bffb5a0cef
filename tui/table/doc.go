// Package table is the console's list widget: columns laid out to the
// terminal width, a live case-insensitive filter, sorting by any column, and
// a cursor. Filtering and sorting happen when rows or settings change, never
// while drawing, and View renders only the visible window, so a list of
// tens of thousands of rows draws as fast as a short one.
package table
