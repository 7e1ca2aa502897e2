#!/bin/sh
# colplaid model convert / tokenize / encode from the command line, on a tiny GloVe JSON
# written here: outputs, the .npy layout, exit statuses (0 ok, 1 failure, 2 usage).
set -u
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail=0
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then echo "FAIL: $1: expected '$2', got '$3'"; fail=1; fi
}
cat > "$work/g.json" <<'JSON'
{"size": 4, "dimensions": 3, "wordIndex": 4, "vectors": {
 "the": [1, 0, 0, 1, 0], "cat": [0, 1, 0, 1, 1], ",": [0, 0, 1, 1, 2], "sat": [1, 1, 0, 1.4, 3]}}
JSON
"$COLPLAID" model convert --glove "$work/g.json" --out "$work/m" 2>/dev/null
check "convert exit" 0 $?
check "vocab" "the cat , sat" "$(tr '\n' ' ' < "$work/m/vocab.txt" | sed 's/ $//')"
check "tokenize" "0 1 3" "$("$COLPLAID" tokenize --model "$work/m" --document 'The cat, sat.')"
check "tokenize raw" "0 1 2 3 2 4" "$("$COLPLAID" tokenize --model "$work/m" --raw --document 'The cat, sat, dog')"
printf 'the cat\nsat\n' > "$work/in.txt"
check "tokenize input" "0 1|3" "$("$COLPLAID" tokenize --model "$work/m" --input "$work/in.txt" | tr '\n' '|' | sed 's/|$//')"
rows=$("$COLPLAID" encode --model "$work/m" --query 'the cat sat' | grep -o '\], \[' | wc -l)
check "encode json rows" 2 "$rows"  # 3 rows -> 2 separators
check "encode json lines" 2 "$("$COLPLAID" encode --model "$work/m" --input "$work/in.txt" --kind query | wc -l)"
"$COLPLAID" encode --model "$work/m" --input "$work/in.txt" --kind query --format npy --out "$work/q.npy"
check "npy exit" 0 $?
check "npy header" "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 8), }" \
  "$(head -c 128 "$work/q.npy" | tail -c +11 | tr -d '\n' | sed 's/ *$//')"
check "npy size" $((128 + 2 * 2 * 8 * 4)) "$(wc -c < "$work/q.npy")"
"$COLPLAID" encode --model "$work/m" --input "$work/in.txt" --format npy --out "$work/d.npy" \
  --doclens-out "$work/dl.npy"
check "doc npy size" $((128 + 3 * 8 * 4)) "$(wc -c < "$work/d.npy")"
check "doclens size" $((128 + 2 * 8)) "$(wc -c < "$work/dl.npy")"
# errors: usage 2, failures 1, a message naming the problem
"$COLPLAID" encode --model "$work/m" 2>/dev/null; check "no text: usage" 2 $?
"$COLPLAID" encode --model "$work/m" --query x --format xml 2>/dev/null; check "bad format" 2 $?
"$COLPLAID" tokenize --query x 2>/dev/null; check "no model" 2 $?
msg=$("$COLPLAID" encode --model "$work/m" --query 'dog ?' 2>&1); check "unknown query" 1 $?
case "$msg" in *"no word"*) ;; *) echo "FAIL: unclear message: $msg"; fail=1 ;; esac
msg=$("$COLPLAID" encode --model "$work" --query x 2>&1); check "not a model" 1 $?
case "$msg" in *"not a model directory"*) ;; *) echo "FAIL: unclear message: $msg"; fail=1 ;; esac
"$COLPLAID" model convert --glove "$work/missing.json" --out "$work/m2" 2>/dev/null; check "missing glove" 1 $?
"$COLPLAID" model convert --glove "$work/g.json" 2>/dev/null; check "convert usage" 2 $?
[ $fail = 0 ] && echo "cli_encode: all checks passed"
exit $fail
