package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubedoio/n-kudo/internal/cliconfig"
)

// errDataDirBusy: another `nkudo dev` runs on the same data dir; two
// stacks on one dir would run the same agents, replacing each other's
// sessions in a loop.
var errDataDirBusy = errors.New("data dir in use")

// lockDataDir takes an exclusive flock on dir/dev.lock and writes this
// process's pid in it, so a second `nkudo dev` can say who holds the dir.
// The lock goes with the process, even a killed one; release closes it.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is used by another nkudo dev (pid %s); stop it or pick another --data-dir",
				errDataDirBusy, dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// checkLoopback refuses a listen address off loopback: the dev stack's
// certificate names only loopback, and its keys must not leave the
// machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--addr %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usagef("--addr %q must be loopback (127.0.0.1 or [::1]): the dev stack is for this machine only", addr)
}

// devContextName is the context a new stack writes: "dev", unless a
// running stack holds it (its server answers), then dev-2, dev-3…
func devContextName(cfg *cliconfig.Config) string {
	name := devContext
	for i := 2; ; i++ {
		c, err := cfg.Get(name)
		if err != nil || !answers(c.Server) {
			return name
		}
		name = devContext + "-" + strconv.Itoa(i)
	}
}

// answers reports whether something listens at a dev context's server.
func answers(server string) bool {
	hostport := strings.TrimPrefix(server, "https://")
	conn, err := net.DialTimeout("tcp", hostport, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
