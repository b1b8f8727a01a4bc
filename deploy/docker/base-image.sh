#!/usr/bin/env bash
# Make sure the Debian base image exists: pull it, or (no Docker Hub, e.g. an air-gapped or proxied
# machine) build the same Debian release from Debian's own packages with mmdebstrap and import it.
#   deploy/docker/base-image.sh [debian:bookworm-slim]
set -euo pipefail
BASE=${1:-debian:bookworm-slim}
DOCKER=${DOCKER:-docker}
if "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
    exit 0
fi
if timeout 60 "$DOCKER" pull -q "$BASE" >/dev/null 2>&1; then
    echo "base: pulled $BASE" >&2
    exit 0
fi
suite=${BASE#*:}; suite=${suite%%-*}
case "$suite" in bookworm|trixie) ;; *) echo "base: cannot pull $BASE and do not know how to build it" >&2; exit 1;; esac
if ! command -v mmdebstrap >/dev/null; then
    echo "base: cannot pull $BASE; install mmdebstrap (apt-get install mmdebstrap) to build it locally" >&2
    exit 1
fi
echo "base: $BASE cannot be pulled; building it from Debian's packages (mmdebstrap --variant=minbase $suite)" >&2
mmdebstrap --quiet --variant=minbase "$suite" - | "$DOCKER" import - "$BASE" >/dev/null
echo "base: built $BASE locally" >&2
