// Package version holds the build's version, stamped at link time with
// -ldflags "-X github.com/kubedoio/n-kudo/internal/version.Version=v1.2.3".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version; "dev" for untagged builds.
var Version = "dev"

// String is the one-line version shown by every binary's `version`.
func String(program string) string {
	rev := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("%s %s (%s, %s, %s/%s)", program, Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
