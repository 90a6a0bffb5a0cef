// Package container holds no code: its test builds the nkudo-server image
// with build.sh (as `task image` does) on a real Docker daemon, runs it
// with a volume and published ports, bootstraps a tenant through the
// published port over the server's own TLS, enrolls a real nkudo-agent
// process from the host, creates a VM, restarts the container and sees
// the agent come back. Without a reachable daemon the test is skipped,
// unless NKUDO_REQUIRE_DOCKER=1 (CI) makes that a failure.
package container
