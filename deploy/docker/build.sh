#!/usr/bin/env bash
# Build the image the same way on a workstation and on a machine without Docker Hub behind a TLS proxy.
#   IMAGE=brasyn-infer:0.1.0 CA_BUNDLE=/path/ca.crt TENSORRT=tensorrt-cu13-libs==X deploy/docker/build.sh
# - base: debian:bookworm-slim, pulled or made locally from Debian's packages (base-image.sh);
# - a client with BuildKit (needed for the CA secret): `docker` with buildx, or a client with BuildKit
#   built in (Debian's docker.io 20.10) under DOCKER_BUILDKIT=1;
# - CA_BUNDLE (default: $PIP_CERT, else $SSL_CERT_FILE, when set): a CA bundle that pip inside the build
#   trusts, passed as the BuildKit secret `ca` (never stored in a layer);
# - the build uses the host's network (--network host), so it works on an engine without a bridge.
# Prints the build time and the image's size.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-brasyn-infer:0.1.0}
BASE=${BASE:-debian:bookworm-slim}
CA_BUNDLE=${CA_BUNDLE-${PIP_CERT:-${SSL_CERT_FILE:-}}}
TENSORRT=${TENSORRT:-}

client=""
for candidate in "${DOCKER:-docker}" /usr/bin/docker; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" buildx version >/dev/null 2>&1; then
        client=$candidate; break
    fi
    if DOCKER_BUILDKIT=1 "$candidate" build --help 2>/dev/null | grep -q -- '--secret'; then
        client=$candidate; export DOCKER_BUILDKIT=1; break
    fi
done
if [ -z "$client" ]; then
    echo "build: no docker client with BuildKit (install docker-buildx, or Debian's docker.io)" >&2
    exit 1
fi
DOCKER=$client deploy/docker/base-image.sh "$BASE"

args=(--network host --build-arg "BASE=$BASE" -t "$IMAGE")
if [ -n "$CA_BUNDLE" ]; then
    [ -f "$CA_BUNDLE" ] || { echo "build: CA_BUNDLE=$CA_BUNDLE is not a file" >&2; exit 1; }
    args+=(--secret "id=ca,src=$CA_BUNDLE")
fi
[ -n "$TENSORRT" ] && args+=(--build-arg "TENSORRT=$TENSORRT")
[ -n "${TENSORRT_INDEX:-}" ] && args+=(--build-arg "TENSORRT_INDEX=$TENSORRT_INDEX")

started=$(date +%s)
"$client" build "${args[@]}" "$@" .
seconds=$(( $(date +%s) - started ))
bytes=$("$client" image inspect -f '{{.Size}}' "$IMAGE")
echo "built $IMAGE in ${seconds} s: $(( bytes / 1000000 )) MB (${bytes} bytes)"
