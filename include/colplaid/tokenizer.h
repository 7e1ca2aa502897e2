/*
 * BERT tokenization (encoder/wordpiece.c, encoder/basic_tokenizer.c): the basic tokenizer (text cleaning, CJK
 * splitting, accent stripping, lowercasing, whitespace and punctuation splitting) and
 * WordPiece, reimplementing the behaviour of Hugging Face's Rust `tokenizers`
 * (BertNormalizer + BertPreTokenizer + WordPiece + added special tokens) so that ids match
 * it exactly. docs/tokenizer.md lists the rules, including how invalid UTF-8 is treated.
 *
 * Invalid UTF-8: every maximal invalid subsequence (the WHATWG / Unicode "maximal subpart"
 * rule, the one TextDecoder uses) decodes to U+FFFD, which text cleaning removes. So bytes
 * that are not UTF-8 are dropped, deterministically, and never crash.
 *
 * Thread safety: a loaded cp_wordpiece is read-only; any number of threads may encode with
 * it at once. The word list (cp_words) belongs to one thread.
 */
#ifndef CP_WORDPIECE_H
#define CP_WORDPIECE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

/* ---------------------------------------------------------------------------------------
 * Basic tokenizer (also used alone by the static word-vector model).
 * ------------------------------------------------------------------------------------ */

typedef struct cp_basic_options {
    bool clean_text;           /* drop NUL, U+FFFD and control chars; whitespace -> ' ' */
    bool handle_chinese_chars; /* every CJK ideograph is a word of its own */
    bool strip_accents;        /* NFD, then drop nonspacing marks (Mn) */
    bool lowercase;
} cp_basic_options;

/* BERT-uncased settings: everything on. */
void cp_basic_options_init(cp_basic_options *o);

/* Words of one text: NUL-terminated strings packed in buf; word i starts at buf + start[i]
 * and has len[i] bytes. punct[i] says the word is a single punctuation character (as the
 * pre-tokenizer defines it). Reuse one cp_words across calls to avoid allocation. */
typedef struct cp_words {
    char *buf;
    size_t buf_len, buf_cap;
    size_t *start;
    uint32_t *len;
    bool *punct;
    size_t n, cap;
} cp_words;

void cp_words_init(cp_words *w);
void cp_words_clear(cp_words *w); /* n = 0, keeps the memory */
void cp_words_free(cp_words *w);

/* Append the words of text[0..len) to out (does not clear it first). Only fails on
 * memory exhaustion. */
cp_status cp_basic_tokenize(const cp_basic_options *o, const char *text, size_t len,
                            cp_words *out, cp_error *err);

/* ---------------------------------------------------------------------------------------
 * WordPiece tokenizer with its vocabulary.
 * ------------------------------------------------------------------------------------ */

typedef struct cp_wordpiece cp_wordpiece;

/*
 * Load a tokenizer. path may be:
 * - a directory: tokenizer.json is used if present, else vocab.txt (settings then from
 *   tokenizer_config.json "do_lower_case" / "strip_accents" / "tokenize_chinese_chars"
 *   when present, BERT-uncased defaults otherwise);
 * - a tokenizer.json file (model.vocab, normalizer settings, added_tokens);
 * - a vocab.txt file (one token per line, id = line number from 0; BERT-uncased defaults).
 * With a vocab.txt, the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] that exist in the
 * vocabulary are matched literally in text, as Hugging Face's BertWordPieceTokenizer does.
 */
cp_status cp_wordpiece_load(const char *path, cp_wordpiece **out, cp_error *err);
void cp_wordpiece_free(cp_wordpiece *wp);

/* Token ids of text (NUL-terminated), without [CLS]/[SEP]: *ids is malloc'd (NULL when
 * *n == 0). Never fails on any input bytes; only on memory exhaustion. */
cp_status cp_wordpiece_encode(const cp_wordpiece *wp, const char *text, int32_t **ids,
                              size_t *n, cp_error *err);

/* Same, for text[0..len) (may contain NUL bytes, which cleaning drops). */
cp_status cp_wordpiece_encode_n(const cp_wordpiece *wp, const char *text, size_t len,
                                int32_t **ids, size_t *n, cp_error *err);

/* Id of an exact vocabulary string (or added token), or -1. */
int32_t cp_wordpiece_token_id(const cp_wordpiece *wp, const char *token);
/* The string of an id, owned by wp, or NULL when out of range / unused. */
const char *cp_wordpiece_token(const cp_wordpiece *wp, int32_t id);
/* One more than the largest id. */
int32_t cp_wordpiece_vocab_size(const cp_wordpiece *wp);

/* Ids of the special tokens, -1 when the vocabulary lacks one. */
typedef struct cp_wordpiece_specials {
    int32_t cls, sep, pad, mask, unk;
    int32_t unused0, unused1; /* ColBERT's [Q] and [D] markers */
} cp_wordpiece_specials;

const cp_wordpiece_specials *cp_wordpiece_special_ids(const cp_wordpiece *wp);

/* The tokenizer's basic-tokenizer settings (from its files). */
const cp_basic_options *cp_wordpiece_basic_options(const cp_wordpiece *wp);

/*
 * ColBERT's document skiplist: the first word-piece id of each of the 32 ASCII
 * string.punctuation characters, deduplicated and sorted ascending. *ids points into wp.
 */
void cp_wordpiece_skiplist(const cp_wordpiece *wp, const int32_t **ids, size_t *n);
/* Whether id is in the skiplist (binary search). */
bool cp_wordpiece_is_skipped(const cp_wordpiece *wp, int32_t id);

#endif
