#!/usr/bin/env bash
# Builds the nkudo-server container image without pulling anything: static
# binaries (CGO_ENABLED=0) of this tree, the build machine's CA bundle and
# the files beside this script go into a build context, and the Dockerfile
# (FROM scratch) copies them. `task image` runs it; so does the container
# test (deployments/container), with its own tag and context directory.
#
#   deployments/container/build.sh [TAG] [CONTEXT-DIR]
#
# TAG defaults to nkudo-server:dev, CONTEXT-DIR to bin/image. VERSION (env)
# is stamped into the binaries (default dev). The context keeps the static
# nkudo-agent and nkudo too, for edge hosts and operators.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tag=${1:-nkudo-server:dev}
ctx=${2:-$repo/bin/image}
ca_bundle=${NKUDO_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [ ! -s "$ca_bundle" ]; then
  echo "build.sh: no CA bundle at $ca_bundle (install ca-certificates or set NKUDO_CA_BUNDLE)" >&2
  exit 1
fi

# The layout the Dockerfile copies; modes are set here because COPY keeps
# them (and owns everything by root unless told otherwise).
# The context dir is wiped; refuse a non-empty one this script did not make.
if [ -d "$ctx" ] && [ -n "$(ls -A "$ctx")" ] && [ ! -e "$ctx/.nkudo-image-context" ]; then
  echo "build.sh: $ctx is not empty and not a build context made by this script; refusing to wipe it" >&2
  exit 1
fi
rm -rf "$ctx"
mkdir -p "$ctx/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/var/lib" "$ctx/state/nkudo"
touch "$ctx/.nkudo-image-context"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0700 "$ctx/state/nkudo"

cd "$repo"
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/kubedoio/n-kudo/internal/version.Version=${VERSION:-dev}" \
  -o "$ctx/bin/" ./cmd/nkudo-server ./cmd/nkudo-agent ./cmd/nkudo
install -m 0644 "$ca_bundle" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
install -m 0644 deployments/container/passwd deployments/container/group "$ctx/rootfs/etc/"

docker build --quiet -f deployments/container/Dockerfile -t "$tag" "$ctx"
