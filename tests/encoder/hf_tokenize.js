// Reference tokenizer for the parity test: Hugging Face's Rust `tokenizers` (N-API build,
// npm @anush008/tokenizers) set up exactly like Python's BertWordPieceTokenizer for an
// uncased vocab.txt. Usage: node hf_tokenize.js VOCAB INPUT OUTPUT
// INPUT holds one text per line; OUTPUT gets the ids with [CLS]/[SEP], space-separated.
'use strict';
const path = require('path');
const fs = require('fs');
const t = require(path.join(__dirname, 'node', 'node_modules', '@anush008', 'tokenizers'));

async function main() {
  const [vocabPath, inputPath, outputPath] = process.argv.slice(2);
  const model = await t.WordPiece.fromFile(vocabPath, { unkToken: '[UNK]' });
  const tok = new t.Tokenizer(model);
  tok.setNormalizer(t.bertNormalizer({ cleanText: true, handleChineseChars: true,
                                       stripAccents: true, lowercase: true }));
  tok.setPreTokenizer(t.bertPreTokenizer());
  const cls = tok.tokenToId('[CLS]'), sep = tok.tokenToId('[SEP]');
  tok.setPostProcessor(t.bertProcessing(['[SEP]', sep], ['[CLS]', cls]));
  tok.addSpecialTokens(['[UNK]', '[SEP]', '[CLS]', '[PAD]', '[MASK]']);
  let lines = fs.readFileSync(inputPath, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const out = [];
  for (let i = 0; i < lines.length; i += 256) {
    const encs = await tok.encodeBatch(lines.slice(i, i + 256), { addSpecialTokens: true });
    for (const e of encs) out.push(e.getIds().join(' '));
  }
  fs.writeFileSync(outputPath, out.join('\n') + (out.length ? '\n' : ''));
}
main().catch((e) => { console.error(e); process.exit(1); });
