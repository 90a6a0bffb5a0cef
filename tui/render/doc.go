// Package render holds the console's pure renderers: functions from values to
// strings (gauges, sparklines, ages, sizes, breadcrumbs, column layout) with
// no state and no styling decisions beyond what they are given. Widgets
// compose them; table tests pin them down.
package render
