/*
 * An empty index with another index's codec (cp_index_create_like): what the server's
 * POST /v1/indexes makes, so that live upserts can fill an index that was never built.
 *
 * A codec is trained from data (k-means centroids, residual buckets); an empty index has
 * none to train on, so it takes the codec of an index whose vectors come from the same
 * model. Copied: the codec (centroids, bucket cutoffs and weights, dim, nbits, variant and
 * its scale range), meta "encoder" (the model fingerprint) and the drift reference (p75 /
 * p99 residual norms of the source's held-out vectors: a property of the codec), with the
 * drift counts reset; and how documents are written and searched: meta "pooling" (token
 * pooling), "windows" (long documents as windows), "hybrid" (the fusion weight) and the
 * lexical side (empty). Not copied: documents, and the search calibration, which was measured
 * on the source's documents; the new index searches with PLAID's fixed defaults until it
 * is compacted or `colplaid index calibrate` runs. Meta "created_from" records the source.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "index_handle.h"
#include "shard.h"
#include "snapshot.h"
#include "storage.h"

static void remove_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char buf[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (snprintf(buf, sizeof buf, "%s%s", path, suffixes[i]) < (int)sizeof buf) unlink(buf);
}

/* The source's drift reference with its running counts reset, or NULL (none, or not
 * readable: the first upsert then takes its batch as the reference, as for an import). */
static char *drift_reference(cp_index *from)
{
    char *stored = cp_index_meta_get(from, "drift");
    char *out = cp_drift_reference_reset(stored);
    free(stored);
    return out;
}

static char *created_from_json(const char *source_path, const char *codec_name)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "codec_from", source_path);
    cJSON_AddStringToObject(o, "codec", codec_name);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Inside the creation transaction: the meta beyond cp_store_create's. */
static cp_status write_meta(cp_store *store, cp_index *from, const cp_codec *codec, cp_error *err)
{
    cp_status st = CP_OK;
    char *encoder = cp_index_meta_get(from, "encoder");
    if (encoder) st = cp_store_set_meta(store, "encoder", encoder, err);
    free(encoder);
    char *drift = st == CP_OK ? drift_reference(from) : NULL;
    if (drift) st = cp_store_set_meta(store, "drift", drift, err);
    free(drift);
    if (st != CP_OK) return st;
    /* How documents are written and searched follows the source, so that an upsert into
     * the new index is pooled, windowed and lexically indexed as one into the source. */
    static const char *const follow[] = {"pooling", "windows", "hybrid"};
    for (size_t i = 0; i < sizeof follow / sizeof follow[0] && st == CP_OK; i++) {
        char *v = cp_index_meta_get(from, follow[i]);
        if (v) st = cp_store_set_meta(store, follow[i], v, err);
        free(v);
    }
    if (st == CP_OK && cp_index_has_lexical(from)) st = cp_store_lexical_create(store, err);
    if (st != CP_OK) return st;
    char *created = created_from_json(cp_index_path(from), cp_codec_variant_name(codec->variant));
    if (!created) return cp_error_set(err, CP_ENOMEM, "out of memory");
    st = cp_store_set_meta(store, "created_from", created, err);
    free(created);
    return st;
}

cp_status cp_index_create_like(const char *path, cp_index *from, cp_error *err)
{
    if (!path || !*path) return cp_error_set(err, CP_EINVAL, "no index path given");
    if (!from) return cp_error_set(err, CP_EINVAL, "no index to take the codec from");
    struct stat sb;
    if (lstat(path, &sb) == 0) return cp_error_set(err, CP_EEXISTS, "%s already exists", path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-create-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return cp_error_set(err, CP_EINVAL, "index path too long: %.200s", path);
    remove_files(tmp);
    /* The snapshot's codec is the file's, as loaded; it stays valid while retained. */
    cp_snapshot *snap = cp_index_acquire_snapshot(from);
    cp_store *store = NULL;
    cp_status st = cp_store_create(tmp, &snap->codec, &store, err);
    if (st == CP_OK && (st = cp_store_begin(store, err)) == CP_OK) {
        st = write_meta(store, from, &snap->codec, err);
        if (st == CP_OK)
            st = cp_store_commit(store, err);
        else
            cp_store_rollback(store);
    }
    /* Everything into the main file before the rename: the WAL keeps the temporary name. */
    if (st == CP_OK) st = cp_store_checkpoint(store, err);
    cp_store_close(store);
    cp_snapshot_release(snap);
    /* link() rather than rename(): it fails when path appeared meanwhile (another creator),
     * where rename would replace that index. */
    if (st == CP_OK && link(tmp, path) != 0)
        st = errno == EEXIST
                 ? cp_error_set(err, CP_EEXISTS, "%s already exists", path)
                 : cp_error_set(err, CP_EIO, "cannot create %s: %s", path, strerror(errno));
    remove_files(tmp);
    return st;
}
