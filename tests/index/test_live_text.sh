#!/usr/bin/env bash
# Live index on real text (SciFact, static GloVe model) through the CLI:
#   1. a full disk (small tmpfs) and a read-only file system make `index add` fail with a
#      clear message; the index stays intact (check passes) and searchable;
#   2. the crash test (test_live_crash) in text mode: SIGKILL at random moments of
#      add/delete/compact, CP_CRASH_TRIALS trials (default 10 here).
# usage: test_live_text.sh COLPLAID CRASH_BIN SOURCE_DIR BUILD_DIR
# Skips (exit 77) when SciFact or the model is unavailable; the tmpfs part is skipped with
# a message when mounting is not allowed.
set -u
command -v jq >/dev/null || { echo "FAIL: jq is missing (scripts/setup-deps.sh installs it)"; exit 1; }
if [[ -n ${CP_SANITIZE_BUILD:-} ]]; then
    echo "SKIP: this end-to-end test runs in the release pass (sanitizer pass: unit tests)"
    exit 77
fi
colplaid=$1 crash=$2 src=$3 build=$4
data=${CP_SHARED_DATA:-/work/shared/data}
corpus=$data/scifact/corpus.jsonl
[[ -f $corpus ]] || { echo "skip: no SciFact at $data/scifact"; exit 77; }
model=$build/test-cache/glove
if ! bash "$src/scripts/fetch-glove-model.sh" "$colplaid" "$model" >/dev/null 2>&1; then
    echo "skip: the static model could not be fetched"
    exit 77
fi
mkdir -p "$build/tests"
work=$(mktemp -d "$build/tests/live_text.XXXXXX")
mnt=$work/mnt
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
cleanup() { mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT

head -n 300 "$corpus" >"$work/small.jsonl"
sed -n 301,900p "$corpus" >"$work/more.jsonl"
echo '{"_id": "q1", "text": "vitamin D deficiency and bone density"}' >"$work/q.jsonl"

count_docs() { "$colplaid" index info --index "$1" --format json 2>/dev/null | jq -r .n_documents; }
search_ok() { "$colplaid" search --index "$1" --model "$model" --queries "$work/q.jsonl" --k 5 \
    2>/dev/null | grep -c . ; }

# ---- 1. disk full and read-only ----
mkdir -p "$mnt"
if mount -t tmpfs -o size=8m tmpfs "$mnt" 2>/dev/null; then
    idx=$mnt/idx.db
    # A build whose WAL fits but whose final file does not: it must fail and leave nothing
    # (it once renamed a half-checkpointed file into place and reported success).
    "$colplaid" index build --index "$idx" --corpus "$work/small.jsonl" --model "$model" --quiet \
        --centroids 8192 2>"$work/err" && fail "a build larger than the disk succeeded"
    grep -q "disk is full" "$work/err" || fail "build on a full disk: message: $(cat "$work/err")"
    [[ -z $(ls -A "$mnt") ]] || fail "build on a full disk left files: $(ls -A "$mnt")"
    echo "disk full during build: $(cat "$work/err"); nothing left behind"
    "$colplaid" index build --index "$idx" --corpus "$work/small.jsonl" --model "$model" --quiet \
        || fail "build on tmpfs"
    before=$(count_docs "$idx")
    # leave a few pages free, then try to add 600 documents
    free_kb=$(df -k --output=avail "$mnt" | tail -1)
    dd if=/dev/zero of="$mnt/filler" bs=1k count=$((free_kb - 48)) status=none 2>/dev/null
    "$colplaid" index add --index "$idx" --corpus "$work/more.jsonl" --model "$model" --quiet \
        >"$work/out" 2>"$work/err"
    st=$?
    [[ $st == 1 ]] || fail "add on a full disk: exit $st"
    grep -q "disk is full" "$work/err" || fail "disk full message: $(cat "$work/err")"
    [[ $(wc -l <"$work/err") == 1 ]] || fail "disk full: one-line error expected: $(cat "$work/err")"
    rm -f "$mnt/filler"
    "$colplaid" index check --index "$idx" >/dev/null 2>&1 || fail "check after disk full"
    [[ $(count_docs "$idx") == "$before" ]] || fail "documents changed after disk full"
    [[ $(search_ok "$idx") == 5 ]] || fail "search after disk full"
    echo "disk full: add refused ($(cat "$work/err")); index intact with $before documents"

    mount -o remount,ro "$mnt" || fail "remount read-only"
    "$colplaid" index add --index "$idx" --corpus "$work/small.jsonl" --model "$model" --quiet \
        >"$work/out" 2>"$work/err"
    st=$?
    [[ $st == 1 ]] || fail "add on a read-only file system: exit $st"
    grep -qi "read-only" "$work/err" || fail "read-only message: $(cat "$work/err")"
    "$colplaid" index delete --index "$idx" --ids /dev/null >/dev/null 2>"$work/err2"
    [[ $? == 1 ]] || fail "delete on a read-only file system should fail"
    [[ $(search_ok "$idx") == 5 ]] || fail "search on read-only"
    [[ $(count_docs "$idx") == "$before" ]] || fail "documents changed on read-only"
    echo "read-only: add refused ($(cat "$work/err")); index searchable"
    umount "$mnt"
else
    echo "note: cannot mount a tmpfs here (not root?); the disk-full case is covered by test_live (max_page_count)"
fi

# ---- 2. crash test over SciFact text ----
trials=${CP_CRASH_TRIALS:-8}
"$crash" "$colplaid" --trials "$trials" --corpus "$corpus" --model "$model" || fail "crash test (text)"

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all live text checks passed"
