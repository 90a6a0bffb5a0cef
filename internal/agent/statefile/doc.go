// Package statefile persists small pieces of agent state as JSON files that
// survive crashes.
//
// Write never leaves a partial file where Read will look: it replaces the
// file through internal/atomicfile (temporary file in the same directory,
// fsync, rename over the target, fsync of the directory). A reader
// therefore sees either the previous complete content or the new complete
// content, never a mix, and a power cut at any point leaves one of the two
// on disk.
//
// A crash between creating the temporary file and renaming it leaves the
// temporary file behind. Read ignores it (it only ever opens the target), and
// RemoveStale deletes such leftovers; owners call it once at start-up, when
// no Write to the same path can be in flight.
//
// Files are created with mode 0600: agent state includes action results and
// VM specs (cloud-init user data may hold secrets).
package statefile
