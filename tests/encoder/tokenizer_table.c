/*
 * Prints, for every Unicode scalar value, how our BERT basic tokenizer treats it:
 * "<hex> <kind> <normalised code points>", kind w (part of a word), s (whitespace split),
 * p (isolated punctuation). tokenizer_parity.sh prints the same table from Hugging Face's
 * Rust tokenizers and compares the two line by line.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wordpiece_internal.h"

static void print_line(const cp_basic_options *o, int32_t c, cp_bytes *norm, cp_words *w)
{
    char one[8], probe[12];
    size_t n = cp_utf8_put(one, c);
    norm->len = 0;
    cp_words_clear(w);
    if (cp_basic_normalize(o, one, n, norm, NULL) != CP_OK) exit(1);
    probe[0] = 'a';
    cp_utf8_put(probe + 1, c);
    probe[1 + n] = 'a';
    if (cp_pretokenize(probe, n + 2, w, NULL) != CP_OK) exit(1);
    char kind = w->n == 1 ? 'w' : w->n == 2 ? 's' : w->n == 3 ? 'p' : '?';
    printf("%x %c ", (unsigned)c, kind);
    const unsigned char *s = (const unsigned char *)norm->data;
    for (size_t i = 0; i < norm->len;) {
        int32_t d;
        i += cp_utf8_next(s, norm->len, i, &d);
        printf(i < norm->len ? "%x," : "%x", (unsigned)d);
    }
    putchar('\n');
}

int main(void)
{
    cp_basic_options o;
    cp_basic_options_init(&o);
    cp_bytes norm = {0};
    cp_words w;
    cp_words_init(&w);
    for (int32_t c = 0; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        print_line(&o, c, &norm, &w);
    }
    free(norm.data);
    cp_words_free(&w);
    return 0;
}
