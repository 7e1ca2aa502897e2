#!/usr/bin/env bash
# `colplaid index import|info|check|export` end to end: exit statuses (0 ok, 1 failure,
# 2 usage), messages, output sizes, and check finding a damaged segment.
set -u
fail=0
die() { echo "FAIL: $*" >&2; fail=1; }
expect_rc() { local want=$1; shift; "$@" >/tmp/cli_admin_out.$$ 2>&1; local rc=$?
  [ "$rc" = "$want" ] || { die "expected exit $want, got $rc: $*"; cat /tmp/cli_admin_out.$$ >&2; }; }

SRC="${CP_TEST_DATA:-$CP_SOURCE_DIR/tests/data}/colbert-miyazaki/nbits4"
if [ ! -f "$SRC/metadata.json" ]; then
  echo "FAIL: the fixture $SRC is missing (tests/data)"; exit 1
fi
T=$(mktemp -d "${CP_BINARY_DIR:-/tmp}/cli_admin.XXXXXX")
trap 'rm -rf "$T" /tmp/cli_admin_out.$$' EXIT

# usage errors
expect_rc 2 "$COLPLAID" index import --colbert "$SRC"
expect_rc 2 "$COLPLAID" index info
expect_rc 2 "$COLPLAID" index info --index x.db --format xml
expect_rc 2 "$COLPLAID" index export --index x.db --out e.npy
expect_rc 2 "$COLPLAID" index check --index x.db --bogus
expect_rc 0 "$COLPLAID" index import --help
grep -q "usage: colplaid index import" /tmp/cli_admin_out.$$ || die "import --help"

# import, refuse to overwrite, --force
expect_rc 0 "$COLPLAID" index import --index "$T/m.db" --colbert "$SRC" --quiet
expect_rc 1 "$COLPLAID" index import --index "$T/m.db" --colbert "$SRC" --quiet
grep -q "already exists" /tmp/cli_admin_out.$$ || die "overwrite message"
expect_rc 0 "$COLPLAID" index import --index "$T/m.db" --colbert "$SRC" --force --quiet
expect_rc 1 "$COLPLAID" index import --index "$T/x.db" --colbert "$T" --quiet
grep -q "metadata.json" /tmp/cli_admin_out.$$ || die "missing metadata message"

# info
expect_rc 0 "$COLPLAID" index info --index "$T/m.db" --format json
grep -q '"n_documents":[[:space:]]*121' /tmp/cli_admin_out.$$ || die "info documents"
grep -q '"n_tokens":[[:space:]]*15899' /tmp/cli_admin_out.$$ || die "info tokens"
expect_rc 0 "$COLPLAID" index info --index "$T/m.db"
grep -q "^nbits *4" /tmp/cli_admin_out.$$ || die "info text"

# check
expect_rc 0 "$COLPLAID" index check --index "$T/m.db"
grep -q ": ok" /tmp/cli_admin_out.$$ || die "check ok line"
printf 'not a database\n' > "$T/foreign.db"
expect_rc 1 "$COLPLAID" index check --index "$T/foreign.db"
grep -q "not a colplaid index" /tmp/cli_admin_out.$$ || die "foreign message"
expect_rc 1 "$COLPLAID" index info --index "$T/missing.db"

# export: float32 [15899, 128] with a 128-byte header, int64 [121], 121 ids
expect_rc 0 "$COLPLAID" index export --index "$T/m.db" --out "$T/e.npy" --doclens-out "$T/l.npy" --ids "$T/ids.txt"
[ "$(stat -c %s "$T/e.npy")" = $((128 + 15899 * 128 * 4)) ] || die "EMB.npy size $(stat -c %s "$T/e.npy")"
[ "$(stat -c %s "$T/l.npy")" = $((128 + 121 * 8)) ] || die "DOCLENS.npy size"
[ "$(wc -l < "$T/ids.txt")" = 121 ] || die "ids lines"
head -c 6 "$T/e.npy" | od -c | grep -q "N   U   M   P   Y" || die "npy magic"

# damage a segment blob with the sqlite3 shell when it is installed
if command -v sqlite3 >/dev/null 2>&1; then
  sqlite3 "$T/m.db" "UPDATE segments SET codes = substr(codes, 1, 300) || x'77' || substr(codes, 302) WHERE segment_id = 0;" \
    || die "sqlite3 update"
  expect_rc 1 "$COLPLAID" index check --index "$T/m.db"
  grep -q "segment 0" /tmp/cli_admin_out.$$ || die "check names the damaged segment"
fi
[ $fail = 0 ] && echo "all index admin CLI checks passed"
exit $fail
