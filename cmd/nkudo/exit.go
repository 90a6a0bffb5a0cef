package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
	"github.com/kubedoio/n-kudo/internal/client"
)

// Exit codes scripts can trust; documented in `nkudo --help`.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitAuth        = 4
	exitUnreachable = 5
	exitPlanFailed  = 6
)

const exitCodesHelp = `Exit codes:
  0  success
  1  error
  2  usage error (bad flags or arguments, or refused by the server as invalid)
  3  not found
  4  authentication or permission refused (including read-only contexts)
  5  server unreachable (logs -f: after retrying for 30s)
  6  plan failed (with --wait)`

// Sentinel errors of the command.
var (
	errReadOnly   = errors.New("the context is read-only")
	errPlanFailed = errors.New("plan failed")
	errNotFound   = errors.New("not found")
	errAborted    = errors.New("aborted")
)

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps an error to the process exit code, in one place.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), isCobraUsage(err), client.IsInvalidArgument(err):
		// The server's 400 (a request it refused as malformed) is a
		// usage error too: fix the arguments and retry.
		return exitUsage
	case errors.Is(err, errPlanFailed):
		return exitPlanFailed
	case client.IsNotFound(err), errors.Is(err, errNotFound), errors.Is(err, cliconfig.ErrContextNotFound):
		return exitNotFound
	case client.IsUnauthenticated(err), client.IsForbidden(err), errors.Is(err, errReadOnly):
		return exitAuth
	case client.IsUnreachable(err):
		return exitUnreachable
	default:
		return exitError
	}
}

// isCobraUsage recognises the errors cobra returns for unknown commands
// and flags, which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, "required flag(s)") {
			return true
		}
	}
	return false
}
