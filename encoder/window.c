/*
 * Long documents as windows (colplaid/window.h): cp_encoder_encode_windows.
 *
 * The text is cut at ASCII whitespace into pieces whose byte (and code point) spans are
 * known; each piece is tokenized on its own by the backend (units), which gives the same
 * tokens as tokenizing the whole text, since both tokenizers split at whitespace first.
 * So every model token knows the piece, and the characters, it came from.
 *
 * Windows of `window` tokens start every `stride` tokens; the last one ends at the last
 * token (all windows of a long document are full). Each is encoded late-chunking style:
 * the span handed to the model is the window widened on both sides with its neighbours'
 * tokens up to the model's position limit, and only the window's own rows are kept. A
 * window's characters run from the start of its first token's piece to the end of its last
 * token's piece.
 */
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"

int cp_encoder_position_limit(const cp_encoder *enc)
{
    return enc->position_limit;
}

void cp_encoder_default_window(const cp_encoder *enc, cp_window_options *out)
{
    *out = enc->window;
}

cp_status cp_encoder_check_window(const cp_encoder *enc, const cp_window_options *w, cp_error *err)
{
    if (!enc->backend->encode_units)
        return cp_error_set(err, CP_EUNSUPPORTED, "this model cannot encode windows");
    if (w->window < 1 || w->window > enc->position_limit)
        return cp_error_set(err, CP_EINVAL,
                            "window %d is out of range: 1 .. %d tokens (the model's position "
                            "limit)",
                            w->window, enc->position_limit);
    if (w->stride < 1 || w->stride > w->window)
        return cp_error_set(err, CP_EINVAL,
                            "window stride %d is out of range: 1 .. the window (%d tokens)",
                            w->stride, w->window);
    return CP_OK;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Code points in bytes [0, n): every byte that does not continue a UTF-8 sequence. */
static int32_t count_chars(const char *s, size_t n)
{
    int32_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

typedef struct unit_list {
    int32_t *ids;
    int32_t *piece; /* piece index of each unit */
    size_t n, cap;
    int32_t *piece_start, *piece_end; /* code point spans of the pieces */
    size_t n_pieces, pieces_cap;
} unit_list;

static void units_free(unit_list *u)
{
    free(u->ids);
    free(u->piece);
    free(u->piece_start);
    free(u->piece_end);
}

static cp_status grow(void **p, size_t *cap, size_t need, size_t size, cp_error *err)
{
    if (need <= *cap) return CP_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return cp_error_set(err, CP_ENOMEM, "out of memory windowing a document");
    *p = q;
    *cap = c;
    return CP_OK;
}

static cp_status split_units(cp_encoder *enc, const char *text, size_t len, unit_list *u,
                             int32_t *total_chars, cp_error *err)
{
    size_t i = 0;
    int32_t chars = 0;
    while (i < len) {
        if (is_space((unsigned char)text[i])) {
            i++;
            chars++;
            continue;
        }
        size_t j = i;
        while (j < len && !is_space((unsigned char)text[j]))
            j++;
        int32_t c = count_chars(text + i, j - i);
        int32_t *ids = NULL;
        size_t n = 0;
        cp_status st = enc->backend->units(enc, text + i, j - i, &ids, &n, err);
        if (st == CP_OK && n) {
            size_t pc = u->pieces_cap;
            st = grow((void **)&u->piece_start, &pc, u->n_pieces + 1, sizeof(int32_t), err);
            if (st == CP_OK) {
                pc = u->pieces_cap;
                st = grow((void **)&u->piece_end, &pc, u->n_pieces + 1, sizeof(int32_t), err);
                u->pieces_cap = pc;
            }
            size_t uc = u->cap;
            if (st == CP_OK) st = grow((void **)&u->ids, &uc, u->n + n, sizeof(int32_t), err);
            if (st == CP_OK) {
                uc = u->cap;
                st = grow((void **)&u->piece, &uc, u->n + n, sizeof(int32_t), err);
                u->cap = uc;
            }
            if (st == CP_OK) {
                u->piece_start[u->n_pieces] = chars;
                u->piece_end[u->n_pieces] = chars + c;
                memcpy(u->ids + u->n, ids, n * sizeof *ids);
                for (size_t k = 0; k < n; k++)
                    u->piece[u->n + k] = (int32_t)u->n_pieces;
                u->n += n;
                u->n_pieces++;
            }
        }
        free(ids);
        if (st != CP_OK) return st;
        chars += c;
        i = j;
    }
    *total_chars = chars;
    return CP_OK;
}

cp_status cp_encoder_encode_windows(cp_encoder *enc, const char *text, const cp_window_options *w,
                                    cp_embeddings *out, cp_window **windows, int32_t *n_windows,
                                    cp_error *err)
{
    memset(out, 0, sizeof *out);
    *windows = NULL;
    *n_windows = 0;
    if (!text) return cp_error_set(err, CP_EINVAL, "no text to encode");
    cp_status st = cp_encoder_check_window(enc, w, err);
    if (st != CP_OK) return st;
    size_t len = strlen(text);
    if (len > INT32_MAX) return cp_error_set(err, CP_EINVAL, "a document of 2 GB or more");
    unit_list u = {0};
    int32_t chars = 0;
    st = split_units(enc, text, len, &u, &chars, err);
    if (st == CP_OK && u.n == 0) { /* nothing the model knows: as a plain encode does */
        cp_window *one = malloc(sizeof *one);
        st = one ? cp_encoder_encode(enc, CP_TEXT_DOCUMENT, &text, 1, out, err)
                 : cp_error_set(err, CP_ENOMEM, "out of memory windowing a document");
        if (st == CP_OK) {
            *one = (cp_window){0, out->n_tokens, 0, chars};
            *windows = one;
            *n_windows = 1;
        } else {
            free(one);
        }
        units_free(&u);
        return st;
    }
    size_t n = u.n, N = (size_t)w->window, S = (size_t)w->stride;
    size_t nw = n <= N ? 1 : (n - N + S - 1) / S + 1; /* upper bound */
    cp_window *win = calloc(nw + 1, sizeof *win);
    cp_embeddings *parts = calloc(nw + 1, sizeof *parts);
    if (st == CP_OK && (!win || !parts))
        st = cp_error_set(err, CP_ENOMEM, "out of memory windowing a document");
    size_t k = 0, limit = (size_t)enc->position_limit;
    int64_t rows = 0;
    for (size_t a = 0; st == CP_OK; a += S) {
        if (a + N >= n) a = n > N ? n - N : 0; /* the last window ends at the end */
        size_t b = a + N < n ? a + N : n;
        size_t extra = limit > b - a ? limit - (b - a) : 0;
        size_t left = a < extra / 2 ? a : extra / 2;
        size_t right = n - b < extra - left ? n - b : extra - left;
        if (extra - right > left) left = a < extra - right ? a : extra - right;
        size_t c0 = a - left, c1 = b + right;
        st = enc->backend->encode_units(enc, u.ids + c0, c1 - c0, a - c0, b - c0, &parts[k], err);
        if (st != CP_OK) break;
        win[k] = (cp_window){(int32_t)rows, (int32_t)(rows + parts[k].n_tokens),
                             u.piece_start[u.piece[a]], u.piece_end[u.piece[b - 1]]};
        rows += parts[k].n_tokens;
        k++;
        if (b == n) break;
    }
    int dim = enc->dim;
    if (st == CP_OK && rows > INT32_MAX)
        st = cp_error_set(err, CP_EINVAL, "a document of more than 2^31 tokens");
    if (st == CP_OK) {
        out->data = malloc((size_t)(rows ? rows : 1) * (size_t)dim * sizeof(float));
        out->token_ids = malloc((size_t)(rows ? rows : 1) * sizeof(int32_t));
        if (!out->data || !out->token_ids) {
            cp_embeddings_free(out);
            st = cp_error_set(err, CP_ENOMEM, "out of memory windowing a document");
        }
    }
    if (st == CP_OK) {
        for (size_t i = 0; i < k; i++) {
            size_t r = (size_t)win[i].tok_start, m = (size_t)parts[i].n_tokens;
            if (m) {
                memcpy(out->data + r * (size_t)dim, parts[i].data, m * (size_t)dim * sizeof(float));
                memcpy(out->token_ids + r, parts[i].token_ids, m * sizeof(int32_t));
            }
        }
        out->n_tokens = (int32_t)rows;
        out->dim = dim;
        *windows = win;
        *n_windows = (int32_t)k;
        win = NULL;
    }
    for (size_t i = 0; parts && i < nw + 1; i++)
        cp_embeddings_free(&parts[i]);
    free(parts);
    free(win);
    units_free(&u);
    if (st == CP_OK) cp_embeddings_truncate(out, cp_encoder_dim(enc)); /* --dim */
    return st;
}
