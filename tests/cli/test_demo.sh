#!/usr/bin/env bash
# README command 1 as a test: scripts/demo.sh builds, converts the GloVe model (npm),
# indexes this machine's package descriptions, serves them and answers a query. Registered
# in the release pass only (the sanitizer pass would rebuild everything a third time).
set -euo pipefail
[[ -r /var/lib/dpkg/status ]] || { echo "SKIP: no /var/lib/dpkg/status on this machine"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$(${CP_PYTHON:-python3} -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Keep the model between runs: converting GloVe is the slow part.
export CP_DEMO_DIR=$CP_BINARY_DIR/demo-test CP_DEMO_PORT=$port CP_DEMO_EXIT=1
export CP_DEMO_QUERY="compress files into an archive"
log=$work/demo.log
if ! bash "$CP_SOURCE_DIR/scripts/demo.sh" >"$log" 2>&1; then
    tail -40 "$log"
    echo "FAIL: scripts/demo.sh exited non-zero"
    exit 1
fi
answer=$(grep -E '^\{"results"' "$log" | tail -1)  # the answer is printed on a line of its own
[[ -n $answer ]] || { tail -40 "$log"; echo "FAIL: no search answer in the demo output"; exit 1; }
# The query is about compression: some compression package must rank in the top 5.
echo "$answer" | ${CP_PYTHON:-python3} -c '
import json, sys
hits = json.load(sys.stdin)["results"][0]["hits"]
ids = [h["id"] for h in hits]
print("top hits:", ids)
assert len(hits) == 5, ids
assert any(k in i for i in ids for k in ("zip", "archive", "xz", "zstd", "lz", "compress")), ids
'
echo "PASS: the demo served a query"
