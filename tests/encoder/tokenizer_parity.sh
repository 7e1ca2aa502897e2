#!/bin/sh
# Tokenizer parity with Hugging Face's Rust tokenizers (npm @anush008/tokenizers, pinned in
# node/package-lock.json): ids of every SciFact corpus text and query plus a hard set, and
# the treatment of every Unicode code point (normaliser + pre-tokenizer). The C side runs as
# `colplaid tokenize --vocab VOCAB --raw --input FILE`.
# Usage: tokenizer_parity.sh TOKENIZER_TABLE_BINARY   (env: COLPLAID, CP_SHARED_DATA)
# Skips (77) without node/npm, without registry access, or without the shared data.
set -u
here=$(cd "$(dirname "$0")" && pwd)
table_bin=$1
vocab="$CP_SHARED_DATA/vocab/bert-base-uncased-vocab.txt"
scifact="$CP_SHARED_DATA/scifact"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIP: node and npm are needed for the reference tokenizer"; exit 77
fi
if [ ! -f "$vocab" ] || [ ! -f "$scifact/corpus.jsonl" ]; then
  echo "SKIP: shared data ($CP_SHARED_DATA) is absent"; exit 77
fi
if [ ! -d "$here/node/node_modules/@anush008/tokenizers" ]; then
  echo "installing the reference tokenizer (npm ci in $here/node)"
  if ! (cd "$here/node" && npm ci --no-audit --no-fund >/dev/null 2>&1); then
    echo "SKIP: npm could not install @anush008/tokenizers (registry unreachable?)"; exit 77
  fi
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
status=0
node "$here/scifact_texts.js" "$scifact" "$work/scifact.txt" || exit 1
node "$here/tokenizer_hard_set.js" "$work/hard.txt" || exit 1
for set in scifact hard; do
  node "$here/hf_tokenize.js" "$vocab" "$work/$set.txt" "$work/$set.ref" || exit 1
  "$COLPLAID" tokenize --vocab "$vocab" --raw --input "$work/$set.txt" --out "$work/$set.ours" || exit 1
  node "$here/compare_lines.js" "$set" "$work/$set.txt" "$work/$set.ref" "$work/$set.ours" || status=1
done
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
