// Writes the hard strings of the tokenizer parity test, one per line: hand-made cases
// (accents, CJK, emoji, long words, control and zero-width characters, literal special
// tokens, Arabic, combining marks...) and seeded random strings over every Unicode plane.
// Usage: node tokenizer_hard_set.js OUTPUT
'use strict';
const fs = require('fs');

const long150 = 'a'.repeat(150);
const hand = [
  'Café naïve résumé Ångström Øresund façade jalapeño', 'ÀÉÎÕÜ àéîõü ÇçÑñ',
  'İstanbul ıi ΣΑΣ σας ß ẞ ǅ ǈ Ω ω ﬁ ﬂ ﬀ', '北京大学 東京 한국어 ひらがな カタカナ 中文字符test混合',
  '𠀀𠀁 𪜀 丽 𤋮', 'emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✈︎ hello😀world',
  long150, 'x' + long150 + ' y', 'a'.repeat(100), 'a'.repeat(101), 'é'.repeat(100),
  'é'.repeat(101), 'unbelievablyantidisestablishmentarianism'.repeat(3),
  'ctrl\u0001\u0002\u0003char\u007f \u0085next\u000bvt\u000cff', 'tab\there\tand  spaces   ',
  'zero\u200bwidth\u200c\u200djoin\u2060word\ufeffbom soft\u00adhyphen',
  'bidi \u202athis\u202c \u200fmark', 'private \ue000\uf8ff use',
  'replacement \ufffd char', 'nul \u0000 inside',
  '[MASK]', '[MASK] is here', 'the [MASK] sat', 'x[MASK]y', '[mask] lower', '[MASK][MASK]',
  '[CLS] a [SEP] b [PAD] [UNK]', '[ MASK ]', '[MASK', 'MASK]', '[unused0] [unused1]',
  'العربية نص عربي مع تشكيل: كَتَبَ', 'עברית עִם נִקּוּד', 'Ελληνικά ἀρχή',
  'Русский текст Ёё', 'हिन्दी देवनागरी', 'ภาษาไทย', 'Tiếng Việt có dấu',
  'a\u0301e\u0300o\u0308 n\u0303 combining', '\u0301\u0301 leading marks',
  'Z\u0351\u0360a\u0352\u0336l\u0337g\u0338o', 'ℌ𝔢𝔩𝔩𝔬 𝐛𝐨𝐥𝐝 ①②③ ²³ ½',
  'ＦＵＬＬＷＩＤＴＨ　ｓｐａｃｅ', 'non\u00a0breaking\u2009thin\u3000ideographic',
  'line\u2028sep\u2029para', "don't can't it's O'Neil", 'e.g. i.e. U.S.A. 3.14 1,000,000',
  'a--b—c–d…e', '«quotes» “curly” ‘single’ „low“', 'price $100 €50 £3 ¥7 ₹9',
  'math ∑∫√∞≈≠≤≥ ± × ÷', 'http://example.com/path?q=1&x=y#frag', 'user@example.org',
  'C++ C# F# .NET node.js', '#hashtag @mention', '(parens) [brackets] {braces} <angles>',
  '!!!???...', '~`^|\\_', '', ' ', 'a', '##', '##ing', 'unaffable', 'UNAFFABLE',
  '\u0130\u0307 dotted', '\u1e9e\u00df', 'ǰ ΐ', '\u0345 iota', 'ﬃ ﬄ ﬅ ﬆ', 'Å Å Å',
  '가각 ᄀ ᅡ ᆨ', '\u{11938}\u{1C89}\u{A7CB} newer unicode', '\u0890 \u08ca \u166d \u1734',
];

// Seeded PRNG (mulberry32) so the set is the same on every run.
function rng(seed) {
  return function () {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const r = rng(12345);
const pools = [
  [0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x6ff],
  [0x900, 0xdff], [0x1100, 0x11ff], [0x1e00, 0x1fff], [0x2000, 0x206f], [0x2070, 0x2bff],
  [0x3000, 0x30ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xf8ff],
  [0xf900, 0xfaff], [0xfb00, 0xfffd], [0x10000, 0x1ffff], [0x1f300, 0x1faff],
  [0x20000, 0x2fa1f], [0x30000, 0x10ffff], [0x0, 0x1f],
];
function randomChar() {
  const [lo, hi] = pools[Math.floor(r() * pools.length)];
  let cp = lo + Math.floor(r() * (hi - lo + 1));
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
  if (cp === 0x0a || cp === 0x0d) cp = 0x20; // one text per line
  return String.fromCodePoint(cp);
}
const random = [];
for (let i = 0; i < 3000; i++) {
  const len = 1 + Math.floor(r() * 40);
  let s = '';
  for (let j = 0; j < len; j++) s += r() < 0.15 ? ' ' : r() < 0.05 ? '[MASK]' : randomChar();
  random.push(s);
}
const all = hand.map((s) => s.replace(/[\n\r]/g, ' ')).concat(random);
fs.writeFileSync(process.argv[2], all.join('\n') + '\n');
