#!/usr/bin/env bash
# MedPerf's own client, installed from a source snapshot (MedPerf is not on PyPI), to run the image as MedPerf does.
#   medperf/client.sh SNAPSHOT    # SNAPSHOT: a folder holding MedPerf's cli/ (e.g. ../shared/tools/medperf)
# Prints the path of the `medperf` command. Idempotent: the venv is kept in $BRASYN_MEDPERF_HOME (default
# ~/.cache/brasyn-infer/medperf) and reused while the snapshot is unchanged.
# MedPerf's pinned requirements need Python 3.11 ($MEDPERF_PYTHON, default python3.11, else python3 if it is 3.11).
# Its CLI opens the folder above cli/ as a git repository with a commit at start-up, so the snapshot is copied
# and committed once (with no remote, its update check does nothing).
set -euo pipefail
SNAPSHOT=$(realpath "${1:?usage: medperf/client.sh SNAPSHOT}")
HOME_DIR=${BRASYN_MEDPERF_HOME:-${HOME:-/tmp}/.cache/brasyn-infer/medperf}
[ -d "$SNAPSHOT/cli/medperf" ] || { echo "medperf: no cli/medperf in $SNAPSHOT" >&2; exit 2; }
stamp=$(cd "$SNAPSHOT" && find cli -type f \( -name '*.py' -o -name requirements.txt -o -name setup.py \) -print0 \
    | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
if [ -x "$HOME_DIR/venv/bin/medperf" ] && [ "$(cat "$HOME_DIR/stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "$HOME_DIR/venv/bin/medperf"
    exit 0
fi
PY=${MEDPERF_PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null; then PY=python3; fi
if [ "$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != 3.11 ]; then
    echo "medperf: its requirements need Python 3.11 (set MEDPERF_PYTHON)" >&2
    exit 3
fi
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR"
cp -r "$SNAPSHOT" "$HOME_DIR/src"
git -C "$HOME_DIR/src" init -q
git -C "$HOME_DIR/src" add -A
git -C "$HOME_DIR/src" -c user.email=ci@localhost -c user.name=ci commit -qm snapshot
"$PY" -m venv "$HOME_DIR/venv"
"$HOME_DIR/venv/bin/pip" install -q --disable-pip-version-check -e "$HOME_DIR/src/cli" >&2
echo "$stamp" > "$HOME_DIR/stamp"
echo "$HOME_DIR/venv/bin/medperf"
