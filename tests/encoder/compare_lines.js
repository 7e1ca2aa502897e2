// Compares two files of token-id lines; prints the count and the first mismatches with the
// text behind them. Exit 1 on any mismatch. Usage: node compare_lines.js NAME TEXTS REF OURS
'use strict';
const fs = require('fs');
const [name, textsPath, refPath, oursPath] = process.argv.slice(2);
const lines = (p) => { const l = fs.readFileSync(p, 'utf8').split('\n'); if (l[l.length - 1] === '') l.pop(); return l; };
const texts = lines(textsPath), ref = lines(refPath), ours = lines(oursPath);
if (ref.length !== texts.length || ours.length !== texts.length) {
  console.log(`${name}: line counts differ: texts ${texts.length}, reference ${ref.length}, ours ${ours.length}`);
  process.exit(1);
}
let bad = 0;
for (let i = 0; i < texts.length; i++) {
  if (ref[i] === ours[i]) continue;
  if (++bad <= 5) console.log(`${name} line ${i + 1}: ${JSON.stringify(texts[i].slice(0, 200))}\n  expected ${ref[i]}\n  got      ${ours[i]}`);
}
console.log(`${name}: ${texts.length} texts compared, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
