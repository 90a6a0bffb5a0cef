// Package imagedir confines the host files a VM may boot from — its disk
// image, kernel, initramfs and firmware — to the agent's image directories
// (`nkudo-agent run --image-dir`). A tenant operator names these paths; the
// agent opens (and copies) them as root, so without this check a tenant
// could boot a VM whose disk is a copy of /etc/shadow or of the agent's
// own private key.
//
// A path is accepted only when it is a clean absolute path (the rule of
// internal/vmspec), lies lexically inside an image directory, and resolves
// — symlinks followed — to a regular file inside an image directory
// (itself resolved). Refusals name the allowed directories but never say
// whether a file outside them exists.
package imagedir
