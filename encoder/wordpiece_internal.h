/*
 * Pieces of the BERT tokenizer shared between basic_tokenizer.c, wordpiece.c and the static
 * model (internal to encoder/). See colplaid/tokenizer.h for the public interface.
 */
#ifndef CP_WORDPIECE_INTERNAL_H
#define CP_WORDPIECE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/tokenizer.h"

/* A growable byte buffer (not NUL-terminated). */
typedef struct cp_bytes {
    char *data;
    size_t len, cap;
} cp_bytes;

/* Decode the code point at s[i] (i < len): returns the bytes consumed (>= 1); invalid
 * input gives U+FFFD for each maximal invalid subsequence. */
size_t cp_utf8_next(const unsigned char *s, size_t len, size_t i, int32_t *cp);
/* Encode c (a valid scalar value) into out (room for 4 bytes); returns the length. */
size_t cp_utf8_put(char *out, int32_t c);

bool cp_char_is_whitespace(int32_t c); /* Rust char::is_whitespace */
bool cp_char_is_punct(int32_t c);      /* BERT: ASCII punctuation or Unicode P* */
/* Unicode version skew with HF's tables (unicode_compat.c). */
bool cp_hf_unassigned(int32_t c); /* assigned for utf8proc, not for HF */
bool cp_hf_punct(int32_t c);      /* punctuation for HF, not for utf8proc */
bool cp_hf_nonspacing(int32_t c); /* Mn for HF, not for utf8proc */
bool cp_hf_no_decomposition(int32_t c); /* NFD leaves it alone in HF */
int32_t cp_hf_lower(int32_t c);   /* newer lowercase mapping, or -1 */

/* BertNormalizer: append the normalised form of text[0..len) to out. */
cp_status cp_basic_normalize(const cp_basic_options *o, const char *text, size_t len,
                             cp_bytes *out, cp_error *err);
/* BertPreTokenizer on already normalised (valid UTF-8) text: append words to out. */
cp_status cp_pretokenize(const char *text, size_t len, cp_words *out, cp_error *err);

#endif
