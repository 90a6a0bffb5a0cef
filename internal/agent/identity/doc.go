// Package identity holds an enrolled agent's credentials on disk: its
// private key, client certificate, the pinned server CA and the ids the
// server assigned at enrollment.
//
// Every file lives in the agent's state directory and is written
// atomically (internal/agent/statefile), so a crash at any point leaves
// either the old or the new content, never a torn file. identity.json is
// written last at enrollment: its presence is what "enrolled" means.
//
// Renewal replaces key and certificate, two files that cannot be renamed
// in one step. The new key is first written beside the old one
// (key.next.pem), then the certificate, then the key is renamed into
// place; Load recognises the one torn state this can leave (new
// certificate, old key.pem, new key.next.pem) and completes the swap.
package identity
