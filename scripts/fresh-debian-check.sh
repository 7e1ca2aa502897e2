#!/usr/bin/env bash
# Run the README's two commands, word for word, on a fresh Debian 12 system: a debootstrap
# chroot that has none of colplaid's dependencies. This is how the wall times quoted in the
# README were taken; it is not part of CI (it downloads a base system and every package).
#   scripts/fresh-debian-check.sh ROOT_DIR [demo|test|both]
# Needs root and debootstrap (apt-get install debootstrap). The clone is made from this
# checkout's HEAD; ../shared (test data) is bind-mounted read-only beside it when present,
# as on a CI machine. Logs: ROOT_DIR.demo.log, ROOT_DIR.test.log.
set -euo pipefail
root=${1:?usage: fresh-debian-check.sh ROOT_DIR [demo|test|both]}
what=${2:-both}
src=$(cd "$(dirname "$0")/.." && pwd)
mirror=${CP_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [[ ! -x $root/usr/bin/apt-get ]]; then
    echo "== debootstrap bookworm into $root"
    debootstrap --include=git,ca-certificates bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
        { echo "debootstrap failed: see $root.debootstrap.log" >&2; exit 1; }
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
        "$mirror" "$mirror" >"$root/etc/apt/sources.list"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Network, not dependencies: where this host reaches the registries through an egress
# proxy with its own CA, the chroot gets that CA and the variables that point tools at it.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
fi

mounted=()
bind() { mkdir -p "$root$2"; mount --bind "$1" "$root$2"; mounted=("$root$2" "${mounted[@]}"); }
cleanup() { for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$root/proc"; mounted=("$root/proc")
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
if [[ -d $src/../shared ]]; then
    bind "$(cd "$src/../shared" && pwd)" /work/shared
    mount -o remount,bind,ro "$root/work/shared"
fi

if [[ ! -d $root/work/main/.git ]]; then
    git clone -q "$src" "$root/work/main"
fi

ca_env=()
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE CURL_CA_BUNDLE; do
    [[ -n ${!v:-} ]] && ca_env+=("$v=${!v}")
done
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 CI="${CI:-}" "${ca_env[@]}" bash -c "$1"; }

if [[ $what == demo || $what == both ]]; then
    echo "== README command 1: bash scripts/demo.sh (log: $root.demo.log)"
    start=$(date +%s)
    in_root 'cd /work/main && bash scripts/demo.sh' >"$root.demo.log" 2>&1 &
    demo=$!
    # The demo serves in the foreground after its query; stop it once the answer is printed.
    until grep -q '"results"' "$root.demo.log" 2>/dev/null; do
        kill -0 $demo 2>/dev/null || { echo "demo exited before answering; tail of the log:" >&2; tail -30 "$root.demo.log" >&2; exit 1; }
        sleep 2
    done
    echo "demo answered a query after $(($(date +%s) - start)) s"
    grep '"results"' "$root.demo.log" | head -c 600; echo
    pkill -f "colplaid serve --index /work/main/demo" || true
    wait $demo || true
fi

if [[ $what == test || $what == both ]]; then
    echo "== README command 2: bash scripts/test.sh (log: $root.test.log)"
    start=$(date +%s)
    rc=0
    in_root 'cd /work/main && bash scripts/test.sh' >"$root.test.log" 2>&1 || rc=$?
    echo "test suite exit $rc after $(($(date +%s) - start)) s"
    grep -E 'tests passed|tests failed' "$root.test.log" || true
    exit $rc
fi
