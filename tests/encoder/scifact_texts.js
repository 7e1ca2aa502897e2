// Writes every SciFact corpus text ("title text") and query, one per line (newlines inside
// a text become spaces), for the tokenizer parity test. Usage: node scifact_texts.js DIR OUT
'use strict';
const fs = require('fs');
const path = require('path');
const [dir, outPath] = process.argv.slice(2);
const out = [];
for (const [file, join] of [['corpus.jsonl', true], ['queries.jsonl', false]]) {
  for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    const text = join && r.title ? r.title + ' ' + r.text : r.text;
    out.push(text.replace(/[\r\n]/g, ' '));
  }
}
fs.writeFileSync(outPath, out.join('\n') + '\n');
