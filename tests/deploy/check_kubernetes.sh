#!/usr/bin/env bash
# deploy/kubernetes (issue 15 §2): the manifests validate against the Kubernetes API schemas
# and the project's rules (validate_kubernetes.js, with kubernetes-models and yaml pinned in
# package.json; installed from npm into the build folder), and name the image docker/
# builds. kubectl cannot validate without a cluster (it downloads the OpenAPI document from
# the API server), hence the npm validator. Then broken copies of the folder must each be
# rejected, so a validator that accepts everything fails this test.
set -u
: "${COLPLAID:?}" "${CP_SOURCE_DIR:?}" "${CP_BINARY_DIR:?}"
src=$CP_SOURCE_DIR
k8s=$src/deploy/kubernetes
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# The image docker/ builds and the compose file runs.
image=$(grep -oE '^\s+image: colplaid:[A-Za-z0-9._-]+' "$src/docker/compose.yaml" | head -n1 | awk '{print $2}')
[[ -n $image ]] || { echo "FAIL: no colplaid image in docker/compose.yaml"; exit 1; }
grep -qE -- "-t ${image%%:*}( |$)" "$src/docker/Dockerfile" ||
    fail "docker/Dockerfile does not say it builds ${image%%:*}"
grep -qE "newName|newTag: ${image##*:}" "$k8s/kustomization.yaml" ||
    fail "kustomization.yaml does not pin the tag ${image##*:}"

dir=$CP_BINARY_DIR/kubernetes-validate
mkdir -p "$dir"
cp "$src/tests/deploy/package.json" "$src/tests/deploy/package-lock.json" "$dir/"
if [[ ! -d $dir/node_modules/kubernetes-models ]] || ! cmp -s "$src/tests/deploy/package-lock.json" "$dir/node_modules/.package-lock.json.cp"; then
    if ! (cd "$dir" && npm ci --no-audit --no-fund --silent >/dev/null 2>&1); then
        echo "SKIP: kubernetes-models could not be installed from the npm registry (offline?)"
        exit 77
    fi
    cp "$src/tests/deploy/package-lock.json" "$dir/node_modules/.package-lock.json.cp"
fi
validate() { NODE_PATH=$dir/node_modules node "$src/tests/deploy/validate_kubernetes.js" "$image" "$COLPLAID" "$@"; }

validate "$k8s" || fail "deploy/kubernetes does not validate"

# Broken copies: each must be rejected.
work=$(mktemp -d /tmp/cp_test_k8s.XXXXXX)
trap 'rm -rf "$work"' EXIT
breaks=(
    "shard-statefulset.yaml|s/replicas: 4/replicas: four/|a string where the schema wants an integer"
    "build-shards-job.yaml|/^      containers:/,\$s/^      containers:/      containerz:/|a pod without its required containers"
    "coordinator.yaml|s/^            - --shards/            - --shardz/|a colplaid option that does not exist"
    "shard-statefulset.yaml|0,/path: \/health/s//path: \/healthz/|a probe not on /health"
    "train-job.yaml|s/image: colplaid:latest/image: colplaid:old/|an image docker/ does not build"
    "build-shards-job.yaml|s/completions: 4/completions: 5/|a shard count that disagrees"
    "build-shards-job.yaml|s/restartPolicy: Never/restartPolicy: Sometimes/|a value outside the schema's enum"
    "coordinator.yaml|s/targetPort: http/targetPort: web/|a Service port no container declares"
    "kustomization.yaml|/coordinator.yaml/d|a manifest kustomization.yaml leaves out"
    "train-job.yaml|s/--out /--output /|an index train option that does not exist"
    "build-shards-job.yaml|s/--codec-from /--codec-form /|an index build option that does not exist"
)
copies=()
for n in "${!breaks[@]}"; do
    IFS='|' read -r file expr what <<<"${breaks[n]}"
    cp -r "$k8s" "$work/k$n"
    sed -i "$expr" "$work/k$n/$file"
    cmp -s "$k8s/$file" "$work/k$n/$file" &&
        fail "the breakage '$what' changed nothing in $file (update this test)"
    copies+=("$work/k$n")
done
# One validator run for all the copies (node and the schemas load once).
out=$(validate "${copies[@]}" 2>&1)
status=$?
if ((status != 1)) || grep -q '^    at ' <<<"$out"; then
    fail "the validator did not end with status 1 on the broken copies (status $status): $out"
fi
for n in "${!breaks[@]}"; do
    IFS='|' read -r file expr what <<<"${breaks[n]}"
    if grep -qx "$work/k$n: ok" <<<"$out" || ! grep -qx "$work/k$n: [0-9]* problem(s)" <<<"$out"; then
        fail "a broken copy ($what, in $file) validated"
    else
        echo "ok  rejected $what: $(grep -m1 "^$work/k$n: " <<<"$out" | cut -d' ' -f2-)"
    fi
done

if ((failures)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok  check_kubernetes"
