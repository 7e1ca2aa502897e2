#!/usr/bin/env bash
# Live index on real text (the 121 + 78 Wikipedia passages of tests/data/colbert-miyazaki,
# static GloVe model) through the CLI:
#   1. a full disk (small tmpfs) and a read-only file system make `index add` fail with a
#      clear message; the index stays intact (check passes) and searchable;
#   2. the crash test (test_live_crash) in text mode: SIGKILL at random moments of
#      add/delete/compact, CP_CRASH_TRIALS trials (default 10 here).
# usage: test_live_text.sh COLPLAID CRASH_BIN SOURCE_DIR BUILD_DIR
# Registered in the release pass only. Fails when the model cannot be fetched or converted;
# skips (77) when this machine does not allow mounting a tmpfs (not root: part 1 needs it).
set -u
command -v jq >/dev/null || { echo "FAIL: jq is missing (scripts/setup-deps.sh installs it)"; exit 1; }
colplaid=$1 crash=$2 src=$3 build=$4
data=${CP_TEST_DATA:-$src/tests/data}/colbert-miyazaki
[[ -f $data/nbits4/collection.json && -f $data/nbits8/collection.json ]] ||
    { echo "FAIL: the fixture $data is missing (tests/data)"; exit 1; }
model=$build/test-cache/glove
mkdir -p "$build/tests"
if ! bash "$src/scripts/fetch-glove-model.sh" "$colplaid" "$model" >"$build/tests/live_text.fetch.log" 2>&1; then
    echo "FAIL: the static model could not be fetched or converted:"; tail -5 "$build/tests/live_text.fetch.log"
    exit 1
fi
work=$(mktemp -d "$build/tests/live_text.XXXXXX")
mnt=$work/mnt
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
cleanup() { mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT

# JSONL corpora (`"_id": ..., "text": ...`, the spacing test_live_crash reads): the nbits4
# passages to build, the nbits8 ones to add; all of them for the crash test.
${CP_PYTHON:-python3} -c 'import json, sys
for nbits, out in (("4", sys.argv[2]), ("8", sys.argv[3])):
    with open("%s/nbits%s/collection.json" % (sys.argv[1], nbits)) as f, open(out, "w") as o:
        for i, text in enumerate(json.load(f)):
            o.write(json.dumps({"_id": "m%s-%d" % (nbits, i), "text": text}) + "\n")' \
    "$data" "$work/small.jsonl" "$work/more.jsonl" || { echo "FAIL: writing the corpora"; exit 1; }
corpus=$work/all.jsonl
cat "$work/small.jsonl" "$work/more.jsonl" >"$corpus"
echo '{"_id": "q1", "text": "animated films of Studio Ghibli"}' >"$work/q.jsonl"

count_docs() { "$colplaid" index info --index "$1" --format json 2>/dev/null | jq -r .n_documents; }
search_ok() { "$colplaid" search --index "$1" --model "$model" --queries "$work/q.jsonl" --k 5 \
    2>/dev/null | grep -c . ; }

# ---- 1. disk full and read-only ----
mkdir -p "$mnt"
# 3 MB: a 1,024-centroid build of the passages fits (0.7 MB), an 8,192-centroid one does not
# (3.6 MB), while its write-ahead log does.
if mount -t tmpfs -o size=3m tmpfs "$mnt" 2>/dev/null; then
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
    # leave a few pages free, then try to add 78 passages
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
    no_mount=1  # reported as a skip at the end, after the crash test
fi

# ---- 2. crash test over the passages ----
trials=${CP_CRASH_TRIALS:-8}
"$crash" "$colplaid" --trials "$trials" --corpus "$corpus" --model "$model" || fail "crash test (text)"

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
if [[ -n ${no_mount:-} ]]; then
    echo "SKIP: cannot mount a tmpfs here (not root?) for the disk-full and read-only cases" \
        "(the crash test passed; test_live covers disk-full through max_page_count)"
    exit 77
fi
echo "all live text checks passed"
