package vmnet

import "golang.org/x/sys/unix"

// errExist is what the kernel answers when a racing creator added the
// device first.
var errExist = unix.EEXIST
