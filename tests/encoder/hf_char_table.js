// Prints, for every Unicode scalar value, how Hugging Face's Rust tokenizers (BERT uncased
// normalizer + pre-tokenizer) treat it, in the format of tokenizer_table.c:
// "<hex> <kind> <normalised code points>", kind w (word), s (whitespace split), p (punctuation).
// Usage: node hf_char_table.js OUTPUT
'use strict';
const path = require('path');
const t = require(path.join(__dirname, 'node', 'node_modules', '@anush008', 'tokenizers'));
const norm = t.bertNormalizer({ cleanText: true, handleChineseChars: true, stripAccents: true,
                                lowercase: true });
const pre = t.bertPreTokenizer();
const out = [];
for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const ch = String.fromCodePoint(cp);
  const n = norm.normalizeString(ch);
  const pieces = pre.preTokenizeString('a' + ch + 'a').length;
  const kind = pieces === 1 ? 'w' : pieces === 2 ? 's' : pieces === 3 ? 'p' : '?';
  const hex = Array.from(n).map((c) => c.codePointAt(0).toString(16)).join(',');
  out.push(cp.toString(16) + ' ' + kind + ' ' + hex);
}
require('fs').writeFileSync(process.argv[2], out.join('\n') + '\n');
