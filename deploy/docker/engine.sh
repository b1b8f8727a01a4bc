#!/usr/bin/env bash
# Make sure a Docker engine answers. On a fresh Debian machine, as root: install Debian's docker.io and
# mmdebstrap and start dockerd without a bridge or iptables rules (overlay2). Builds then use
# --network host and test runs --network none, so nothing needs a container network.
set -euo pipefail
docker_ok() { timeout 20 docker info >/dev/null 2>&1 || timeout 20 /usr/bin/docker info >/dev/null 2>&1; }
if docker_ok; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "engine: no Docker engine answers, and starting one needs root" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null || [ ! -x /usr/bin/docker ]; then
    echo "engine: installing docker.io and mmdebstrap" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap >/dev/null
fi
if ! pgrep -x dockerd >/dev/null; then
    echo "engine: starting dockerd (--bridge=none --iptables=false), log in /var/log/brasyn-dockerd.log" >&2
    setsid dockerd --bridge=none --iptables=false >/var/log/brasyn-dockerd.log 2>&1 < /dev/null &
fi
for _ in $(seq 60); do
    docker_ok && exit 0
    sleep 1
done
echo "engine: dockerd did not answer within 60 s; see /var/log/brasyn-dockerd.log" >&2
exit 1
