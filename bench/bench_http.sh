#!/bin/sh
# HTTP load benchmark: wrk against `colplaid serve` on loopback, on a synthetic index
# (bench/gen_synthetic, default 100k documents), with embedding queries (base64, 32 x 128)
# at k=10. Reports QPS and p50/p99 at 1, 16, 64 and 256 connections, the engine's own p50
# for the same queries (colplaid eval, one thread), and the ratios the server is judged by:
#   http_p50(1 conn) / engine_p50      (target <= 1.2)
#   qps(16 conns) / qps(1 conn)         (target >= 1.8 on 2 cores)
#   failed requests at 256 connections  (target 0)
# Ends with one JSON record line. Never run by ctest.
#
# What makes the p50 comparison fair:
# - the same binary, index file, 1000 queries, k=10 and PLAID's defaults for k on both
#   sides; the server opens the index --read-only, as `colplaid eval` does;
# - one search at a time on both sides: eval --threads 1, and wrk with one connection
#   (one busy worker);
# - the engine is measured right before AND right after the 1-connection run, and the
#   ratio uses their mean: on a shared machine the speed drifts by 2x within minutes,
#   so a baseline taken at another time compares the machine, not the server;
# - every answer carries the engine time the server measured (timing_ms.search); its
#   median over the requests wrk timed (server_search_p50_ms) gives a second ratio,
#   http_p50 / server_search_p50, that no drift between runs can affect.
# The load average before and after is recorded: numbers taken with a load above the core
# count measure the scheduler (4 thread wake-ups per request), not the server.
#
# Environment: BUILD (build folder, default ./build), DIR (work folder, default
# /tmp/cp_http_bench), DOCS (100000), QUERIES (1000), DURATION (10s), CONNS ("1 16 64 256"),
# THREADS (server workers, default: cores). TEXT_MODEL=DIR adds a text-query pass (the
# server encodes; the model's dim must match the index, e.g. a BERT-base ColBERT with dim
# 128) at TEXT_CONNS ("1 16") connections; TEXT_ONLY=1 skips the embedding pass, and with
# IDX=FILE (an index built with that model, e.g. SciFact with the static GloVe model) it
# needs no synthetic data. SERVE_OPTS adds options to `colplaid serve`.
set -eu

BUILD=${BUILD:-./build}
DIR=${DIR:-/tmp/cp_http_bench}
DOCS=${DOCS:-100000}
QUERIES=${QUERIES:-1000}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-"1 16 64 256"}
THREADS=${THREADS:-$(nproc)}
HERE=$(cd "$(dirname "$0")" && pwd)
COLPLAID=${COLPLAID:-$BUILD/colplaid}
GEN=${GEN:-$BUILD/bench/gen_synthetic}
PY=${PYTHON:-python3}

command -v wrk >/dev/null || { echo "bench_http: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$COLPLAID" ] || { echo "bench_http: no colplaid at $COLPLAID (set BUILD)" >&2; exit 1; }
mkdir -p "$DIR"
IDX=${IDX:-$DIR/idx${DOCS}.db}
TEXT_ONLY=${TEXT_ONLY:-0}

if [ ! -f "$IDX" ] && [ "$TEXT_ONLY" = 1 ]; then
    echo "bench_http: no index at $IDX (TEXT_ONLY=1 needs an index built with TEXT_MODEL)" >&2
    exit 1
elif [ ! -f "$IDX" ]; then
    echo "== generating $DOCS synthetic documents and building $IDX" >&2
    "$GEN" --out "$DIR" --docs "$DOCS" --queries "$QUERIES" >&2
    "$COLPLAID" index build --index "$IDX" --embeddings "$DIR/emb.npy" --doclens "$DIR/doclens.npy" >&2
fi
[ "$TEXT_ONLY" = 1 ] || [ -f "$DIR/queries.npy" ] || { echo "bench_http: $DIR/queries.npy missing; remove $IDX to regenerate" >&2; exit 1; }

# The engine's own latency for the same queries: one thread, k=10, PLAID defaults.
[ "$TEXT_ONLY" = 1 ] || n_q=$("$PY" -c "import re,sys;h=open(sys.argv[1],'rb').read(200).decode('latin1');print(re.search(r'\((\d+),',h).group(1))" "$DIR/queries.npy")
[ "$TEXT_ONLY" = 1 ] || seq 0 $((n_q - 1)) > "$DIR/query_ids.txt"
# engine_p50: prints "p50 p99" of one eval pass.
engine_p50() {
    "$COLPLAID" eval --index "$IDX" --queries "$DIR/queries.npy" --query-ids "$DIR/query_ids.txt" \
        --qrels "$DIR/qrels.tsv" --k 10 --threads 1 --format json |
        "$PY" -c "import json,sys;l=json.load(sys.stdin)['latency_ms'];print(l['p50'],l['p99'])"
}
loadavg() { cut -d' ' -f1 /proc/loadavg; }

[ "$TEXT_ONLY" = 1 ] || "$PY" "$HERE/http_make_bodies.py" "$DIR/queries.npy" "$DIR/bodies.jsonl" 10

LOG="$DIR/server.log"
SERVER=""
trap '[ -n "$SERVER" ] && kill -TERM $SERVER 2>/dev/null || true' EXIT

# start_server [extra serve options...]: sets SERVER and URL.
start_server() {
    "$COLPLAID" serve --index "idx=$IDX" --read-only --port 0 --threads "$THREADS" \
        --queue-depth 4096 --max-connections 2000 --no-access-log ${SERVE_OPTS:-} "$@" 2> "$LOG" &
    SERVER=$!
    port=""
    for _ in $(seq 1 1200); do
        port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\)\/.*/\1/p' "$LOG")
        [ -n "$port" ] && break
        kill -0 $SERVER 2>/dev/null || { cat "$LOG" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$port" ] || { echo "bench_http: server did not start" >&2; cat "$LOG" >&2; exit 1; }
    URL="http://127.0.0.1:$port"
}

stop_server() {
    kill -TERM $SERVER
    wait $SERVER || true
    SERVER=""
}

# run_wrk BODIES CONNS...: prints a table to stderr, sets RESULTS to '"c": {...},' entries.
# With BRACKET=1 the engine is measured just before and after the 1-connection run
# (ENGINE_BEFORE, ENGINE_AFTER: "p50 p99").
run_wrk() {
    bodies=$1
    shift
    # Warm-up (page cache, allocator, first model call), not measured.
    BODIES="$bodies" INDEX=idx wrk -t1 -c2 -d2s --timeout 30s -s "$HERE/http_wrk.lua" "$URL" >/dev/null
    RESULTS=""
    printf '%-6s %10s %10s %10s %10s %8s %12s %12s\n' conns qps p50_ms p99_ms max_ms failed \
        srv_search50 srv_encode50 >&2
    for c in "$@"; do
        t=$([ "$c" -ge 2 ] && echo 2 || echo 1)
        [ "$c" = 1 ] && [ "${BRACKET:-0}" = 1 ] && ENGINE_BEFORE=$(engine_p50)
        line=$(BODIES="$bodies" INDEX=idx wrk -t"$t" -c"$c" -d"$DURATION" --timeout 30s \
            -s "$HERE/http_wrk.lua" "$URL" | grep '^{"requests"')
        [ "$c" = 1 ] && [ "${BRACKET:-0}" = 1 ] && ENGINE_AFTER=$(engine_p50)
        echo "$line" | "$PY" -c "
import json,sys
r=json.load(sys.stdin); e=r['errors']
print('%-6s %10.1f %10.3f %10.3f %10.3f %8d %12.3f %12.3f' % ('$c', r['qps'], r['p50_ms'], r['p99_ms'],
      r['max_ms'], sum(e.values()), r['server_search_p50_ms'], r['server_encode_p50_ms']))" >&2
        RESULTS="$RESULTS\"$c\": $line,"
    done
}

LOAD_START=$(loadavg)
ENGINE_BEFORE="nan nan"
ENGINE_AFTER="nan nan"
results=""
if [ "$TEXT_ONLY" != 1 ]; then
    echo "== embedding queries (base64 32 x 128), k=10" >&2
    start_server
    BRACKET=1 run_wrk "$DIR/bodies.jsonl" $CONNS
    results=$RESULTS
    stop_server
fi

text_results=""
if [ -n "${TEXT_MODEL:-}" ]; then
    echo "== text queries encoded by the server ($TEXT_MODEL), k=10" >&2
    "$PY" -c "
import random
words = 'river mountain protein cell gene climate ocean virus memory language network energy brain market law history music city light water'.split()
rng = random.Random(1)
for _ in range(500):
    print('{\"queries\": [{\"text\": \"%s\"}], \"k\": 10}' % ' '.join(rng.choice(words) for _ in range(rng.randint(3, 9))))
" > "$DIR/text_bodies.jsonl"
    start_server --model "$TEXT_MODEL"
    run_wrk "$DIR/text_bodies.jsonl" ${TEXT_CONNS:-1 16}
    text_results=$RESULTS
    curl -s "$URL/metrics" | grep -E '^colplaid_(search_stage_seconds_.*encode|encode_batch)' >&2 || true
    stop_server
fi
trap - EXIT

LOAD_END=$(loadavg)

"$PY" - "$ENGINE_BEFORE" "$ENGINE_AFTER" "$THREADS" "$DOCS" "$LOAD_START" "$LOAD_END" <<PYEOF
import json, sys
runs = json.loads("{" + """$results""".rstrip(",") + "}")
text_runs = json.loads("{" + """$text_results""".rstrip(",") + "}")
before = [float(x) for x in sys.argv[1].split()]
after = [float(x) for x in sys.argv[2].split()]
threads, docs = int(sys.argv[3]), int(sys.argv[4])
engine_p50 = (before[0] + after[0]) / 2
rec = {"bench": "http", "docs": docs, "k": 10, "server_threads": threads,
       "engine_p50_ms": engine_p50, "engine_p50_before_ms": before[0],
       "engine_p50_after_ms": after[0], "engine_p99_ms": (before[1] + after[1]) / 2,
       "loadavg_start": float(sys.argv[5]), "loadavg_end": float(sys.argv[6]), "runs": runs}
if text_runs:
    rec["text_runs"] = text_runs
if "1" in runs:
    rec["http_p50_over_engine_p50"] = runs["1"]["p50_ms"] / engine_p50
    if runs["1"]["server_search_p50_ms"] > 0:
        rec["http_p50_over_server_search_p50"] = runs["1"]["p50_ms"] / runs["1"]["server_search_p50_ms"]
if "1" in runs and "16" in runs:
    rec["qps16_over_qps1"] = runs["16"]["qps"] / runs["1"]["qps"]
if "256" in runs:
    rec["failed_at_256"] = sum(runs["256"]["errors"].values())
if "1" in runs:
    print("engine p50 %.3f ms (one thread; %.3f before, %.3f after the 1-connection run); "
          "http p50 at 1 conn / engine p50 = %.3f; / server-measured search p50 = %s; "
          "qps16/qps1 = %s; failed at 256 = %s; load average %s -> %s"
          % (engine_p50, before[0], after[0], rec.get("http_p50_over_engine_p50", float("nan")),
             "%.3f" % rec.get("http_p50_over_server_search_p50", float("nan")),
             "%.2f" % rec.get("qps16_over_qps1", float("nan")), rec.get("failed_at_256"),
             sys.argv[5], sys.argv[6]), file=sys.stderr)
print(json.dumps({k: (None if v != v else v) for k, v in rec.items()}))
PYEOF
