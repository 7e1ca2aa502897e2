/*
 * Unicode version skew between libutf8proc and Hugging Face's tokenizers.
 *
 * HF's BertNormalizer and BertPreTokenizer classify characters with the
 * `unicode_categories` crate, whose tables are older than the Unicode 15 of libutf8proc
 * 2.8, while lowercasing uses Rust's standard library, which is newer. For parity:
 * - hf_unassigned: assigned in utf8proc but not in HF's tables, so for HF they are
 *   neither control characters, punctuation nor nonspacing marks: kept as they are;
 * - hf_punct / hf_nonspacing: category changes between the versions;
 * - hf_lower: lowercase mappings of characters added after Unicode 15;
 * - hf_no_decomposition: canonical decompositions HF's normaliser does not know yet.
 * The tables were produced by running both sides over every code point; the parity test
 * (tests/encoder/tokenizer_parity.sh) runs that comparison again, so a library upgrade that
 * shifts anything is caught.
 */
#include "wordpiece_internal.h"

typedef struct {
    int32_t lo, hi;
} cp_range;

#include "unicode_compat.inc"

static bool in_ranges(const cp_range *r, size_t n, int32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].hi) lo = mid + 1;
        else return true;
    }
    return false;
}

#define IN(table, c) in_ranges(table, sizeof table / sizeof table[0], c)

bool cp_hf_unassigned(int32_t c) { return c >= 0x37F && IN(hf_unassigned, c); }
bool cp_hf_punct(int32_t c) { return IN(hf_punct, c); }
bool cp_hf_nonspacing(int32_t c) { return IN(hf_nonspacing, c); }
bool cp_hf_no_decomposition(int32_t c) { return IN(hf_no_decomposition, c); }

int32_t cp_hf_lower(int32_t c)
{
    const cp_range *r = hf_lower; /* {upper, lower} pairs sorted by upper */
    size_t lo = 0, hi = sizeof hf_lower / sizeof hf_lower[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].lo) lo = mid + 1;
        else return r[mid].hi;
    }
    return -1;
}
