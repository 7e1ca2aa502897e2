#!/usr/bin/env bash
# Install everything colplaid needs to build, run and test on Debian 12 (bookworm).
# Idempotent: packages already present are left alone. Needs root (or sudo).
#   scripts/setup-deps.sh            build + run + test dependencies
#   scripts/setup-deps.sh --build    what building needs
#   scripts/setup-deps.sh --demo     building plus npm (the main job fetches GloVe with it)
#   scripts/setup-deps.sh --runtime  only what the built binary needs at run time
set -euo pipefail

runtime=(libmicrohttpd12 libsqlite3-0 libzstd1 libopenblas0-pthread libcjson1 libutf8proc2
         libgomp1 ca-certificates curl)
build=(build-essential cmake pkg-config git
       libmicrohttpd-dev libsqlite3-dev libfaiss-dev libzstd-dev libopenblas-dev libcjson-dev
       libutf8proc-dev libcurl4-openssl-dev)
demo=(nodejs npm)
test=(python3 python3-numpy python3-torch python3-pip python3-setuptools python3-wheel python3-venv clang libclang-rt-14-dev libomp-dev sqlite3 jq unzip wrk hyperfine chromium
      podman runc debootstrap python3-yaml munge slurmctld slurmd slurm-client)

mode=${1:-all}
case "$mode" in
    --runtime) want=("${runtime[@]}") ;;
    --build) want=("${runtime[@]}" "${build[@]}") ;;
    --demo) want=("${runtime[@]}" "${build[@]}" "${demo[@]}") ;;
    all | --all) want=("${runtime[@]}" "${build[@]}" "${demo[@]}" "${test[@]}") ;;
    *) echo "usage: $0 [--runtime|--build|--demo|--all]" >&2; exit 2 ;;
esac

# nodejs/npm may come from another repository already (NodeSource); keep whatever works.
missing=()
for pkg in "${want[@]}"; do
    if [[ $pkg == nodejs || $pkg == npm ]] && command -v "${pkg/nodejs/node}" >/dev/null 2>&1; then
        continue
    fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "setup-deps: all ${#want[@]} packages present"
    exit 0
fi

sudo=()
if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "setup-deps: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
