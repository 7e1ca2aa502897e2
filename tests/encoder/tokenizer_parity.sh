#!/bin/sh
# Tokenizer parity with Hugging Face's Rust tokenizers (npm @anush008/tokenizers, pinned in
# node/package-lock.json). The C side runs as `colplaid tokenize --vocab VOCAB --raw`.
# Usage: tokenizer_parity.sh TOKENIZER_TABLE_BINARY SET   (env: COLPLAID, CP_TEST_DATA,
# CP_SHARED_DATA), SET one of
#   fixtures  the Wikipedia passages of tests/data/colbert-miyazaki, a hard set, and the
#             treatment of every Unicode code point (normaliser + pre-tokenizer);
#   scifact   every SciFact corpus text and query (CC BY-NC, not in the repository: skipped
#             without $CP_SHARED_DATA/scifact).
# The vocabulary is tests/data's bert-base-uncased. Fails without node/npm; skips (77) when
# the npm registry cannot be reached to install the reference.
set -u
here=$(cd "$(dirname "$0")" && pwd)
table_bin=$1 set=$2
data=${CP_TEST_DATA:-$here/../data}
vocab="$data/vocab/bert-base-uncased-vocab.txt"
scifact="${CP_SHARED_DATA:-$here/../../../shared/data}/scifact"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "FAIL: node and npm are needed for the reference tokenizer (scripts/setup-deps.sh)"; exit 1
fi
[ -f "$vocab" ] || { echo "FAIL: the fixture $vocab is missing (tests/data)"; exit 1; }
if [ "$set" = scifact ] && [ ! -f "$scifact/corpus.jsonl" ]; then
  echo "SKIP: SciFact (CC BY-NC, not redistributable) is absent at $scifact"; exit 77
fi
# Two parity tests may start together: one installs (npm ci) under the lock, the other
# waits for it to finish (the folder appears long before npm is done with it).
if ! (cd "$here/node" && flock .npm-ci.lock sh -c '[ -f node_modules/.cp-installed ] ||
      { npm ci --no-audit --no-fund >/dev/null 2>&1 && touch node_modules/.cp-installed; }'); then
  echo "SKIP: npm could not install @anush008/tokenizers (registry unreachable?)"; exit 77
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
status=0
case $set in
  fixtures)
    # one passage per line (newlines inside a passage become spaces)
    node -e '
      const fs = require("fs");
      const out = [];
      for (const f of process.argv.slice(2, -1))
        for (const p of JSON.parse(fs.readFileSync(f, "utf8"))) out.push(p.replace(/[\r\n]/g, " "));
      fs.writeFileSync(process.argv[process.argv.length - 1], out.join("\n") + "\n");' \
      "$data/colbert-miyazaki/nbits4/collection.json" "$data/colbert-miyazaki/nbits8/collection.json" \
      "$work/passages.txt" || exit 1
    node "$here/tokenizer_hard_set.js" "$work/hard.txt" || exit 1
    sets="passages hard" ;;
  scifact)
    node "$here/scifact_texts.js" "$scifact" "$work/scifact.txt" || exit 1
    sets=scifact ;;
  *) echo "usage: tokenizer_parity.sh TOKENIZER_TABLE_BINARY fixtures|scifact"; exit 2 ;;
esac
for s in $sets; do
  node "$here/hf_tokenize.js" "$vocab" "$work/$s.txt" "$work/$s.ref" || exit 1
  "$COLPLAID" tokenize --vocab "$vocab" --raw --input "$work/$s.txt" --out "$work/$s.ours" || exit 1
  node "$here/compare_lines.js" "$s" "$work/$s.txt" "$work/$s.ref" "$work/$s.ours" || status=1
done
[ "$set" = fixtures ] || exit $status
# Every code point, normaliser and pre-tokenizer alone.
node "$here/hf_char_table.js" "$work/chars.ref" || exit 1
"$table_bin" > "$work/chars.ours" || exit 1
if cmp -s "$work/chars.ref" "$work/chars.ours"; then
  echo "code points: $(wc -l < "$work/chars.ref") compared, 0 mismatches"
else
  echo "code points: mismatches (reference < > ours):"
  diff "$work/chars.ref" "$work/chars.ours" | head -20
  status=1
fi
exit $status
