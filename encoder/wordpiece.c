/*
 * WordPiece: vocabulary loading (vocab.txt or tokenizer.json), added-token splitting and
 * greedy longest-match-first subword segmentation, as Hugging Face's Rust tokenizers do.
 *
 * Pipeline for one text (same order as HF):
 * 1. split the raw text on added tokens whose "normalized" flag is false (BERT's special
 *    tokens: a literal "[MASK]" in text becomes the [MASK] id), leftmost-longest;
 * 2. normalise each remaining piece (basic_tokenizer.c), then split it on added tokens
 *    whose "normalized" flag is true;
 * 3. pre-tokenise into words; each word of more than max_input_chars_per_word (100)
 *    characters, or that cannot be fully segmented, becomes [UNK].
 *
 * The vocabulary lives in one string arena with an open-addressing hash table of ids; a
 * continuation piece is looked up as "##" + piece built in a stack buffer, so encoding
 * allocates only the growing output arrays.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "colplaid/tokenizer.h"
#include "cp_strtab.h"
#include "wordpiece_internal.h"

#define CP_WP_MAX_WORD_BYTES 1024 /* 100 chars x 4 bytes + "##", with room to spare */

typedef struct added_token {
    int32_t id;
    uint32_t off, len; /* content in the arena */
    bool normalized, lstrip, rstrip, single_word;
} added_token;

struct cp_wordpiece {
    cp_basic_options basic;
    char *arena; /* every token string, NUL-terminated */
    size_t arena_len, arena_cap;
    uint32_t *id_off;  /* id -> arena offset of its string, UINT32_MAX when unused */
    uint32_t *id_len;
    int32_t n_ids;
    cp_strtab table; /* string -> id */
    added_token *added;
    size_t n_added;
    bool added_first_byte[2][256]; /* [normalized] first bytes of added tokens */
    char prefix[16];               /* continuing_subword_prefix, "##" */
    size_t prefix_len;
    int max_chars;
    int32_t unk;
    cp_wordpiece_specials specials;
    int32_t skiplist[32];
    size_t n_skiplist;
};

/* ---- vocabulary ------------------------------------------------------------------------- */

static const char *vocab_key_of(const void *ctx, int32_t id)
{
    const cp_wordpiece *wp = ctx;
    return wp->arena + wp->id_off[id];
}

static int32_t vocab_find(const cp_wordpiece *wp, const char *s, size_t n)
{
    return cp_strtab_find_n(&wp->table, s, n, vocab_key_of, wp);
}

static cp_status arena_add(cp_wordpiece *wp, const char *s, size_t n, uint32_t *off,
                           cp_error *err)
{
    if (wp->arena_len + n + 1 > wp->arena_cap) {
        size_t cap = wp->arena_cap ? wp->arena_cap : 1 << 16;
        while (cap < wp->arena_len + n + 1) cap *= 2;
        if (cap > UINT32_MAX) return cp_error_set(err, CP_EFORMAT, "vocabulary is too large");
        char *a = realloc(wp->arena, cap);
        if (!a) return cp_error_set(err, CP_ENOMEM, "out of memory loading the vocabulary");
        wp->arena = a;
        wp->arena_cap = cap;
    }
    memcpy(wp->arena + wp->arena_len, s, n);
    wp->arena[wp->arena_len + n] = '\0';
    *off = (uint32_t)wp->arena_len;
    wp->arena_len += n + 1;
    return CP_OK;
}

/* Size the id arrays for ids [0, n) and the hash table for n entries. */
static cp_status vocab_alloc(cp_wordpiece *wp, int32_t n, cp_error *err)
{
    wp->id_off = malloc((size_t)n * sizeof *wp->id_off);
    wp->id_len = calloc((size_t)n, sizeof *wp->id_len);
    if (!wp->id_off || !wp->id_len || !cp_strtab_init(&wp->table, (uint64_t)n))
        return cp_error_set(err, CP_ENOMEM, "out of memory loading the vocabulary");
    for (int32_t i = 0; i < n; i++)
        wp->id_off[i] = UINT32_MAX;
    wp->n_ids = n;
    return CP_OK;
}

/* Map s -> id (a later duplicate string takes the string over, as in HF) and id -> s. */
static cp_status vocab_set(cp_wordpiece *wp, const char *s, size_t n, int32_t id, cp_error *err)
{
    uint32_t off = 0;
    cp_status st = arena_add(wp, s, n, &off, err);
    if (st != CP_OK) return st;
    int32_t before = vocab_find(wp, s, n);
    if (before >= 0) cp_strtab_remove(&wp->table, vocab_key_of(wp, before), before);
    wp->id_off[id] = off;
    wp->id_len[id] = (uint32_t)n;
    if (!cp_strtab_reserve(&wp->table, 1, vocab_key_of, wp))
        return cp_error_set(err, CP_ENOMEM, "out of memory loading the vocabulary");
    cp_strtab_insert(&wp->table, vocab_key_of(wp, id), id);
    return CP_OK;
}

static cp_status read_file(const char *path, char **data, size_t *len, cp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return cp_error_set(err, CP_ENOTFOUND, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        char *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf) return cp_error_set(err, CP_ENOMEM, "out of memory reading %s", path);
    if (bad) {
        free(buf);
        return cp_error_set(err, CP_EIO, "cannot read %s", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return CP_OK;
}

/* ---- added tokens ------------------------------------------------------------------------ */

static cp_status add_token(cp_wordpiece *wp, const char *s, int32_t id, bool normalized,
                           bool lstrip, bool rstrip, bool single_word, cp_error *err)
{
    size_t n = strlen(s);
    if (n == 0) return CP_OK;
    added_token *a = realloc(wp->added, (wp->n_added + 1) * sizeof *a);
    if (!a) return cp_error_set(err, CP_ENOMEM, "out of memory loading added tokens");
    wp->added = a;
    added_token *t = &a[wp->n_added];
    if (arena_add(wp, s, n, &t->off, err) != CP_OK) return err ? err->code : CP_ENOMEM;
    t->id = id;
    t->len = (uint32_t)n;
    t->normalized = normalized;
    t->lstrip = lstrip;
    t->rstrip = rstrip;
    t->single_word = single_word;
    wp->added_first_byte[normalized][(unsigned char)s[0]] = true;
    wp->n_added++;
    return CP_OK;
}

static bool is_word_byte(const char *s, size_t len, size_t i, bool before)
{
    /* single_word: the neighbouring character must not be alphanumeric or '_'. ASCII
     * check on the neighbouring byte; a non-ASCII neighbour counts as a word character. */
    if (before ? i == 0 : i >= len) return false;
    unsigned char c = (unsigned char)s[before ? i - 1 : i];
    if (c >= 0x80) return true;
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '_';
}

/* Leftmost-longest added-token match in s[from, len) among tokens with this normalized
 * flag: returns the token index or -1; *at = match start. */
static long find_added(const cp_wordpiece *wp, const char *s, size_t len, size_t from,
                       bool normalized, size_t *at)
{
    for (size_t i = from; i < len; i++) {
        if (!wp->added_first_byte[normalized][(unsigned char)s[i]]) continue;
        long best = -1;
        for (size_t k = 0; k < wp->n_added; k++) {
            const added_token *t = &wp->added[k];
            if (t->normalized != normalized || t->len > len - i) continue;
            if (memcmp(s + i, wp->arena + t->off, t->len)) continue;
            if (t->single_word &&
                (is_word_byte(s, len, i, true) || is_word_byte(s, len, i + t->len, false)))
                continue;
            if (best < 0 || t->len > wp->added[best].len) best = (long)k;
        }
        if (best >= 0) {
            *at = i;
            return best;
        }
    }
    return -1;
}

/* ---- encoding ------------------------------------------------------------------------------ */

typedef struct id_buf {
    int32_t *ids;
    size_t n, cap;
} id_buf;

static cp_status push_id(id_buf *b, int32_t id, cp_error *err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *p = realloc(b->ids, cap * sizeof *p);
        if (!p) return cp_error_set(err, CP_ENOMEM, "out of memory while tokenizing");
        b->ids = p;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
    return CP_OK;
}

/* Greedy longest-match-first segmentation of one word. */
static cp_status wordpiece_word(const cp_wordpiece *wp, const char *w, size_t len, id_buf *out,
                                cp_error *err)
{
    size_t bounds[128]; /* char start offsets, then len */
    size_t nb = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)w[i] & 0xC0) == 0x80) continue;
        if ((int)nb >= wp->max_chars || nb >= 127) return push_id(out, wp->unk, err);
        bounds[nb++] = i;
    }
    bounds[nb] = len;
    char piece[CP_WP_MAX_WORD_BYTES];
    size_t first = out->n, start = 0;
    while (start < nb) {
        int32_t id = -1;
        size_t end = nb;
        for (; end > start; end--) {
            size_t plen = bounds[end] - bounds[start];
            if (start == 0) {
                id = vocab_find(wp, w + bounds[start], plen);
            } else {
                if (wp->prefix_len + plen > sizeof piece) continue;
                memcpy(piece, wp->prefix, wp->prefix_len);
                memcpy(piece + wp->prefix_len, w + bounds[start], plen);
                id = vocab_find(wp, piece, wp->prefix_len + plen);
            }
            if (id >= 0) break;
        }
        if (id < 0) {
            out->n = first; /* the whole word is unknown */
            return push_id(out, wp->unk, err);
        }
        if (push_id(out, id, err) != CP_OK) return CP_ENOMEM;
        start = end;
    }
    return CP_OK;
}

/* Normalised text piece: split on normalized added tokens, pre-tokenise, WordPiece. */
static cp_status encode_normalized(const cp_wordpiece *wp, const char *s, size_t len,
                                   cp_words *words, id_buf *out, cp_error *err)
{
    size_t pos = 0;
    while (pos <= len) {
        size_t at = len;
        long k = find_added(wp, s, len, pos, true, &at);
        cp_words_clear(words);
        if (cp_pretokenize(s + pos, at - pos, words, err) != CP_OK) return CP_ENOMEM;
        for (size_t i = 0; i < words->n; i++)
            if (wordpiece_word(wp, words->buf + words->start[i], words->len[i], out, err) != CP_OK)
                return CP_ENOMEM;
        if (k < 0) break;
        if (push_id(out, wp->added[k].id, err) != CP_OK) return CP_ENOMEM;
        pos = at + wp->added[k].len;
    }
    return CP_OK;
}

static cp_status encode_raw_piece(const cp_wordpiece *wp, const char *s, size_t len,
                                  cp_bytes *norm, cp_words *words, id_buf *out, cp_error *err)
{
    norm->len = 0;
    if (cp_basic_normalize(&wp->basic, s, len, norm, err) != CP_OK) return CP_ENOMEM;
    return encode_normalized(wp, norm->data ? norm->data : "", norm->len, words, out, err);
}

/* Whitespace (ASCII and the common Unicode spaces are enough for strip flags) width of
 * the character ending at s[i-1] / starting at s[i]; 0 if none. */
static size_t space_before(const char *s, size_t i)
{
    if (i == 0) return 0;
    unsigned char c = (unsigned char)s[i - 1];
    return (c == ' ' || (c >= 0x09 && c <= 0x0D)) ? 1 : 0;
}

static size_t space_after(const char *s, size_t len, size_t i)
{
    if (i >= len) return 0;
    unsigned char c = (unsigned char)s[i];
    return (c == ' ' || (c >= 0x09 && c <= 0x0D)) ? 1 : 0;
}

cp_status cp_wordpiece_encode_n(const cp_wordpiece *wp, const char *text, size_t len,
                                int32_t **ids, size_t *n, cp_error *err)
{
    id_buf out = {0};
    cp_bytes norm = {0};
    cp_words words;
    cp_words_init(&words);
    cp_status st = CP_OK;
    size_t pos = 0;
    while (st == CP_OK && pos <= len) {
        size_t at = len;
        long k = find_added(wp, text, len, pos, false, &at);
        size_t end = at, next = len + 1;
        if (k >= 0) {
            const added_token *t = &wp->added[k];
            size_t stop = at + t->len;
            if (t->lstrip)
                while (end > pos && space_before(text, end)) end--;
            if (t->rstrip)
                while (space_after(text, len, stop)) stop++;
            next = stop;
        }
        st = encode_raw_piece(wp, text + pos, end - pos, &norm, &words, &out, err);
        if (st == CP_OK && k >= 0) st = push_id(&out, wp->added[k].id, err);
        pos = next;
    }
    free(norm.data);
    cp_words_free(&words);
    if (st != CP_OK) {
        free(out.ids);
        return st;
    }
    *ids = out.ids;
    *n = out.n;
    return CP_OK;
}

cp_status cp_wordpiece_encode(const cp_wordpiece *wp, const char *text, int32_t **ids,
                              size_t *n, cp_error *err)
{
    return cp_wordpiece_encode_n(wp, text, strlen(text), ids, n, err);
}

/* ---- loading ------------------------------------------------------------------------------ */

static void find_specials(cp_wordpiece *wp)
{
    cp_wordpiece_specials *s = &wp->specials;
    s->cls = vocab_find(wp, "[CLS]", 5);
    s->sep = vocab_find(wp, "[SEP]", 5);
    s->pad = vocab_find(wp, "[PAD]", 5);
    s->mask = vocab_find(wp, "[MASK]", 6);
    s->unk = wp->unk;
    s->unused0 = vocab_find(wp, "[unused0]", 9);
    s->unused1 = vocab_find(wp, "[unused1]", 9);
    /* ColBERT's skiplist: the first word-piece of each string.punctuation character. */
    static const char punct[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    wp->n_skiplist = 0;
    for (const char *p = punct; *p; p++) {
        int32_t id = vocab_find(wp, p, 1);
        if (id < 0) continue;
        bool dup = false;
        for (size_t i = 0; i < wp->n_skiplist; i++) dup |= wp->skiplist[i] == id;
        if (!dup) wp->skiplist[wp->n_skiplist++] = id;
    }
    for (size_t i = 1; i < wp->n_skiplist; i++) /* insertion sort: 32 entries */
        for (size_t j = i; j > 0 && wp->skiplist[j - 1] > wp->skiplist[j]; j--) {
            int32_t t = wp->skiplist[j];
            wp->skiplist[j] = wp->skiplist[j - 1];
            wp->skiplist[j - 1] = t;
        }
}

static cp_status load_vocab_txt(cp_wordpiece *wp, const char *path, cp_error *err)
{
    char *data;
    size_t len;
    cp_status st = read_file(path, &data, &len, err);
    if (st != CP_OK) return st;
    int32_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    if (len && data[len - 1] != '\n') lines++;
    if (lines == 0) {
        free(data);
        return cp_error_set(err, CP_EFORMAT, "%s: the vocabulary is empty", path);
    }
    st = vocab_alloc(wp, lines, err);
    char *p = data;
    for (int32_t id = 0; st == CP_OK && id < lines; id++) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
        size_t keep = n; /* HF trims trailing whitespace (Rust trim_end) */
        while (keep && (p[keep - 1] == ' ' || (p[keep - 1] >= 0x09 && p[keep - 1] <= 0x0D)))
            keep--;
        st = vocab_set(wp, p, keep, id, err);
        p += n + 1;
    }
    free(data);
    if (st != CP_OK) return st;
    wp->unk = vocab_find(wp, "[UNK]", 5);
    if (wp->unk < 0) return cp_error_set(err, CP_EFORMAT, "%s: no [UNK] token in the vocabulary", path);
    /* BertWordPieceTokenizer: the special tokens present are matched literally in text. */
    static const char *const specials[] = {"[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]"};
    for (size_t i = 0; i < 5; i++) {
        int32_t id = vocab_find(wp, specials[i], strlen(specials[i]));
        if (id >= 0 && add_token(wp, specials[i], id, false, false, false, false, err) != CP_OK)
            return CP_ENOMEM;
    }
    return CP_OK;
}

static bool json_bool(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

/* tokenizer_config.json beside a vocab.txt: do_lower_case and friends. */
static void load_tokenizer_config(cp_wordpiece *wp, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *data;
    size_t len;
    if (read_file(path, &data, &len, NULL) != CP_OK) return;
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    if (!j) return;
    wp->basic.lowercase = json_bool(j, "do_lower_case", wp->basic.lowercase);
    wp->basic.strip_accents = json_bool(j, "strip_accents", wp->basic.lowercase);
    wp->basic.handle_chinese_chars =
        json_bool(j, "tokenize_chinese_chars", wp->basic.handle_chinese_chars);
    cJSON_Delete(j);
}

static cp_status json_normalizer(cp_wordpiece *wp, const cJSON *norm, const char *path,
                                 cp_error *err)
{
    if (!norm || cJSON_IsNull(norm)) {
        wp->basic.clean_text = wp->basic.handle_chinese_chars = false;
        wp->basic.lowercase = wp->basic.strip_accents = false;
        return CP_OK;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BertNormalizer"))
        return cp_error_set(err, CP_EUNSUPPORTED,
                            "%s: normalizer \"%s\" is not supported (only BertNormalizer)", path,
                            cJSON_IsString(type) ? type->valuestring : "?");
    wp->basic.clean_text = json_bool(norm, "clean_text", true);
    wp->basic.handle_chinese_chars = json_bool(norm, "handle_chinese_chars", true);
    wp->basic.lowercase = json_bool(norm, "lowercase", true);
    wp->basic.strip_accents = json_bool(norm, "strip_accents", wp->basic.lowercase);
    return CP_OK;
}

static cp_status json_model(cp_wordpiece *wp, const cJSON *model, const cJSON *added,
                            const char *path, cp_error *err)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "WordPiece"))
        return cp_error_set(err, CP_EUNSUPPORTED,
                            "%s: tokenizer model \"%s\" is not supported (only WordPiece)", path,
                            type->valuestring);
    if (!cJSON_IsObject(vocab) || !vocab->child)
        return cp_error_set(err, CP_EFORMAT, "%s: model.vocab is missing or empty", path);
    double max_id = -1;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 16777216 ||
            v->valuedouble != (double)(int32_t)v->valuedouble)
            return cp_error_set(err, CP_EFORMAT, "%s: model.vocab[\"%s\"] is not a valid id", path,
                                v->string ? v->string : "?");
        if (v->valuedouble > max_id) max_id = v->valuedouble;
    }
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble <= 16777216 &&
            id->valuedouble > max_id)
            max_id = id->valuedouble;
    }
    cp_status st = vocab_alloc(wp, (int32_t)max_id + 1, err);
    for (const cJSON *v = vocab->child; st == CP_OK && v; v = v->next)
        st = vocab_set(wp, v->string, strlen(v->string), (int32_t)v->valuedouble, err);
    if (st != CP_OK) return st;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const char *unk_s = cJSON_IsString(unk) ? unk->valuestring : "[UNK]";
    wp->unk = vocab_find(wp, unk_s, strlen(unk_s));
    if (wp->unk < 0)
        return cp_error_set(err, CP_EFORMAT, "%s: unk_token \"%s\" is not in the vocabulary", path,
                            unk_s);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if (cJSON_IsString(pre) && strlen(pre->valuestring) < sizeof wp->prefix) {
        strcpy(wp->prefix, pre->valuestring);
        wp->prefix_len = strlen(wp->prefix);
    }
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (cJSON_IsNumber(mc) && mc->valuedouble >= 1 && mc->valuedouble <= 100)
        wp->max_chars = (int)mc->valuedouble;
    return CP_OK;
}

static cp_status json_added(cp_wordpiece *wp, const cJSON *added, const char *path,
                            cp_error *err)
{
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valuedouble < 0 ||
            id->valuedouble >= wp->n_ids)
            return cp_error_set(err, CP_EFORMAT, "%s: an entry of added_tokens lacks a valid id or content",
                                path);
        int32_t i = (int32_t)id->valuedouble;
        if (wp->id_off[i] == UINT32_MAX &&
            vocab_set(wp, content->valuestring, strlen(content->valuestring), i, err) != CP_OK)
            return CP_ENOMEM;
        bool special = json_bool(a, "special", false);
        if (add_token(wp, content->valuestring, i, json_bool(a, "normalized", !special),
                      json_bool(a, "lstrip", false), json_bool(a, "rstrip", false),
                      json_bool(a, "single_word", false), err) != CP_OK)
            return CP_ENOMEM;
    }
    return CP_OK;
}

static cp_status load_tokenizer_json(cp_wordpiece *wp, const char *path, cp_error *err)
{
    char *data;
    size_t len;
    cp_status st = read_file(path, &data, &len, err);
    if (st != CP_OK) return st;
    cJSON *j = cJSON_ParseWithLength(data, len);
    free(data);
    if (!j) return cp_error_set(err, CP_EFORMAT, "%s is not valid JSON", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    const cJSON *pre_type = cJSON_GetObjectItemCaseSensitive(pre, "type");
    if (!cJSON_IsObject(model))
        st = cp_error_set(err, CP_EFORMAT, "%s: no \"model\" object", path);
    else if (cJSON_IsString(pre_type) && strcmp(pre_type->valuestring, "BertPreTokenizer"))
        st = cp_error_set(err, CP_EUNSUPPORTED,
                          "%s: pre_tokenizer \"%s\" is not supported (only BertPreTokenizer)",
                          path, pre_type->valuestring);
    if (st == CP_OK) st = json_normalizer(wp, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), path, err);
    if (st == CP_OK) st = json_model(wp, model, cJSON_IsArray(added) ? added : NULL, path, err);
    if (st == CP_OK) st = json_added(wp, cJSON_IsArray(added) ? added : NULL, path, err);
    cJSON_Delete(j);
    return st;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static cp_status load_path(cp_wordpiece *wp, const char *path, cp_error *err)
{
    if (!is_dir(path)) {
        if (ends_with(path, ".json")) return load_tokenizer_json(wp, path, err);
        return load_vocab_txt(wp, path, err);
    }
    char file[4096];
    snprintf(file, sizeof file, "%s/tokenizer.json", path);
    if (file_exists(file)) return load_tokenizer_json(wp, file, err);
    snprintf(file, sizeof file, "%s/vocab.txt", path);
    if (!file_exists(file))
        return cp_error_set(err, CP_ENOTFOUND,
                            "%s has no tokenizer: expected tokenizer.json or vocab.txt", path);
    load_tokenizer_config(wp, path);
    return load_vocab_txt(wp, file, err);
}

cp_status cp_wordpiece_load(const char *path, cp_wordpiece **out, cp_error *err)
{
    cp_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp) return cp_error_set(err, CP_ENOMEM, "out of memory loading a tokenizer");
    cp_basic_options_init(&wp->basic);
    strcpy(wp->prefix, "##");
    wp->prefix_len = 2;
    wp->max_chars = 100;
    cp_status st = load_path(wp, path, err);
    if (st != CP_OK) {
        cp_wordpiece_free(wp);
        return st;
    }
    find_specials(wp);
    *out = wp;
    return CP_OK;
}

void cp_wordpiece_free(cp_wordpiece *wp)
{
    if (!wp) return;
    free(wp->arena);
    free(wp->id_off);
    free(wp->id_len);
    cp_strtab_free(&wp->table);
    free(wp->added);
    free(wp);
}

/* ---- lookups ------------------------------------------------------------------------------ */

int32_t cp_wordpiece_token_id(const cp_wordpiece *wp, const char *token)
{
    return vocab_find(wp, token, strlen(token));
}

const char *cp_wordpiece_token(const cp_wordpiece *wp, int32_t id)
{
    if (id < 0 || id >= wp->n_ids || wp->id_off[id] == UINT32_MAX) return NULL;
    return wp->arena + wp->id_off[id];
}

int32_t cp_wordpiece_vocab_size(const cp_wordpiece *wp) { return wp->n_ids; }

const cp_wordpiece_specials *cp_wordpiece_special_ids(const cp_wordpiece *wp)
{
    return &wp->specials;
}

const cp_basic_options *cp_wordpiece_basic_options(const cp_wordpiece *wp) { return &wp->basic; }

void cp_wordpiece_skiplist(const cp_wordpiece *wp, const int32_t **ids, size_t *n)
{
    *ids = wp->skiplist;
    *n = wp->n_skiplist;
}

bool cp_wordpiece_is_skipped(const cp_wordpiece *wp, int32_t id)
{
    size_t lo = 0, hi = wp->n_skiplist;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (wp->skiplist[mid] < id) lo = mid + 1;
        else if (wp->skiplist[mid] > id) hi = mid;
        else return true;
    }
    return false;
}
