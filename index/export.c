/*
 * cp_index_export: every live document's decompressed token embeddings as EMB.npy
 * (float32 [tokens, dim]) + DOCLENS.npy (int64 [docs]) (+ IDS.txt), in ascending internal
 * id order, from one retained snapshot so a concurrent update cannot mix two states.
 *
 * Files are written completely or removed: a failed export leaves nothing half-written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "index_handle.h"
#include "snapshot.h"
#include "colplaid/npy.h"

static cp_status write_embeddings(const cp_snapshot *s, cp_npy_writer *w, cp_error *err)
{
    int dim = s->codec.dim, rb = cp_codec_token_bytes(&s->codec);
    enum { BATCH = 1024 };
    float *buf = malloc((size_t)BATCH * (size_t)dim * sizeof *buf);
    if (!buf) return cp_error_set(err, CP_ENOMEM, "out of memory exporting");
    cp_status st = CP_OK;
    int filled = 0;
    for (int64_t d = 0; d < s->n_slots && st == CP_OK; d++) {
        if (s->deleted[d]) continue;
        for (int64_t t = s->doc_offsets[d]; t < s->doc_offsets[d + 1] && st == CP_OK; t++) {
            cp_codec_decompress_one(&s->codec, s->codes[t], s->residuals + (size_t)t * (size_t)rb,
                                    buf + (size_t)filled * (size_t)dim);
            if (++filled == BATCH) {
                st = cp_npy_write_data(w, buf, (size_t)filled * (size_t)dim * sizeof *buf, err);
                filled = 0;
            }
        }
    }
    if (st == CP_OK && filled)
        st = cp_npy_write_data(w, buf, (size_t)filled * (size_t)dim * sizeof *buf, err);
    free(buf);
    return st;
}

static cp_status write_doclens(const cp_snapshot *s, cp_npy_writer *w, cp_error *err)
{
    cp_status st = CP_OK;
    for (int64_t d = 0; d < s->n_slots && st == CP_OK; d++) {
        if (s->deleted[d]) continue;
        int64_t len = s->doc_offsets[d + 1] - s->doc_offsets[d];
        st = cp_npy_write_data(w, &len, sizeof len, err);
    }
    return st;
}

static cp_status write_ids(const cp_snapshot *s, const char *path, cp_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return cp_error_set(err, CP_EIO, "cannot create %s: %s", path, strerror(errno));
    for (int64_t d = 0; d < s->n_slots; d++) {
        if (s->deleted[d]) continue;
        const char *id = s->external_ids[d];
        if (strpbrk(id, "\r\n")) {
            fclose(f);
            unlink(path);
            return cp_error_set(err, CP_EUNSUPPORTED,
                                "%s: document id of internal id %lld contains a line break and "
                                "cannot be written one per line",
                                path, (long long)cp_snapshot_file_id(s, d));
        }
        fputs(id, f);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int e = errno;
        unlink(path);
        return cp_error_set(err, e == ENOSPC ? CP_ENOSPC : CP_EIO, "writing %s: %s", path,
                            strerror(e));
    }
    return CP_OK;
}

cp_status cp_index_export(cp_index *index, const char *emb_path, const char *doclens_path,
                          const char *ids_path, cp_error *err)
{
    cp_snapshot *s = cp_index_acquire_snapshot(index);
    cp_npy_writer emb, lens;
    int64_t emb_shape[2] = {s->n_tokens, s->codec.dim}, lens_shape[1] = {s->n_live};
    cp_status st = cp_npy_write_begin(&emb, emb_path, "<f4", emb_shape, 2, err);
    if (st == CP_OK) {
        st = write_embeddings(s, &emb, err);
        if (st == CP_OK) st = cp_npy_write_end(&emb, err);
        else cp_npy_write_abort(&emb);
    }
    if (st == CP_OK) {
        st = cp_npy_write_begin(&lens, doclens_path, "<i8", lens_shape, 1, err);
        if (st == CP_OK) {
            st = write_doclens(s, &lens, err);
            if (st == CP_OK) st = cp_npy_write_end(&lens, err);
            else cp_npy_write_abort(&lens);
        }
        if (st != CP_OK) unlink(emb_path);
    }
    if (st == CP_OK && ids_path) {
        st = write_ids(s, ids_path, err);
        if (st != CP_OK) {
            unlink(emb_path);
            unlink(doclens_path);
        }
    }
    cp_snapshot_release(s);
    return st;
}
