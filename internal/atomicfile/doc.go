// Package atomicfile replaces files so that a crash or power cut leaves
// either the previous complete content or the new complete content on
// disk, never a truncated or mixed file.
//
// Write creates a temporary file in the target's directory, sets its mode,
// writes and fsyncs it, renames it over the target (atomic on POSIX file
// systems) and fsyncs the directory so the rename itself is durable. The
// temporary file lives in the same directory because a rename is only
// atomic within one file system.
//
// A crash between creating the temporary file and renaming it leaves the
// temporary file behind, named ".<target>" + TempMarker + "<random>". It
// never shadows the target (readers only open the target); RemoveStale
// deletes such leftovers, and owners call it once at start-up, when no
// Write to the same path can be in flight.
//
// The server's PKI files (keys, certificates) and the agent's JSON state
// (statefile) both go through this package.
package atomicfile
