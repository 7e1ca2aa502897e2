/*
 * Import of the real Stanford ColBERT indexes in tests/data/colbert-miyazaki (nbits 4 and
 * 8): counts, codes, every decompressed vector against a straightforward implementation of
 * the reference formula (v = normalize(C[code] + w[b_j]) with b_j decoded from the
 * reference bit order here, independently of the codec), the rebuilt IVF against the
 * file's ivf.pid.pt, and agreement between the nbits=4 and near-lossless nbits=8 imports on
 * the passages both contain.
 */
#include <sys/stat.h>

#include "cp_test.h"
#include "colplaid/pt.h"
#include "storage_test_util.h"

typedef struct ref_index {
    cp_pt_file centroids, buckets, codes, residuals, ivf;
    int nbits, dim;
} ref_index;

static bool open_ref(const char *dir, int nbits, ref_index *r)
{
    char p[2048];
    cp_error err = {0};
    cp_pt_file *files[] = {&r->centroids, &r->buckets, &r->codes, &r->residuals, &r->ivf};
    const char *names[] = {"centroids.pt", "buckets.pt", "0.codes.pt", "0.residuals.pt",
                           "ivf.pid.pt"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (cp_pt_open(p, files[i], &err) != CP_OK) {
            fprintf(stderr, "%s\n", err.message);
            cp_test_failures++;
            return false;
        }
    }
    r->nbits = nbits;
    r->dim = 128;
    return true;
}

static void close_ref(ref_index *r)
{
    cp_pt_close(&r->centroids);
    cp_pt_close(&r->buckets);
    cp_pt_close(&r->codes);
    cp_pt_close(&r->residuals);
    cp_pt_close(&r->ivf);
}

/* Bucket of dim j in the reference layout: bits LSB-first per dim, np.packbits (MSB first). */
static int ref_bucket(const uint8_t *packed, int j, int nbits)
{
    int b = 0;
    for (int k = 0; k < nbits; k++) {
        int s = j * nbits + k;
        int bit = (packed[s / 8] >> (7 - s % 8)) & 1;
        b |= bit << k;
    }
    return b;
}

static void ref_vector(const ref_index *r, int64_t t, double *out)
{
    int rb = r->dim * r->nbits / 8;
    int32_t code = (int32_t)cp_pt_int_at(&r->codes.tensors[0], t);
    const uint8_t *packed = r->residuals.tensors[0].data + t * rb;
    double n = 0;
    for (int j = 0; j < r->dim; j++) {
        int b = ref_bucket(packed, j, r->nbits);
        out[j] = (double)cp_pt_float_at(&r->centroids.tensors[0], (int64_t)code * r->dim + j) +
                 (double)cp_pt_float_at(&r->buckets.tensors[1], b);
        n += out[j] * out[j];
    }
    for (int j = 0; j < r->dim; j++) out[j] /= sqrt(n);
}

/* The zip reader returns exactly the bytes `unzip -p` extracts (unzip: scripts/setup-deps.sh). */
static void check_zip_bytes(const char *dir)
{
    char cmd[1200], tmp[] = "/tmp/cp_test_unzip.XXXXXX";
    int fd = mkstemp(tmp);
    CP_CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    snprintf(cmd, sizeof cmd, "unzip -p '%s/centroids.pt' centroids/data/0 > '%s'", dir, tmp);
    if (system(cmd) != 0) {
        fprintf(stderr, "`%s` failed (is unzip installed?)\n", cmd);
        cp_test_failures++;
        unlink(tmp);
        return;
    }
    cp_pt_file f;
    cp_error err = {0};
    CP_CHECK(cp_pt_open(tmp, &f, &err) == CP_EFORMAT); /* raw storage bytes are no .pt */
    snprintf(cmd, sizeof cmd, "%s/centroids.pt", dir);
    CP_CHECK_OK(cp_pt_open(cmd, &f, &err), err);
    FILE *fp = fopen(tmp, "rb");
    uint8_t *raw = malloc(1 << 20);
    size_t n = fp ? fread(raw, 1, 1 << 20, fp) : 0;
    if (fp) fclose(fp);
    CP_CHECK_INT(n, f.tensors[0].numel * 2);
    CP_CHECK(n == (size_t)f.tensors[0].numel * 2 && memcmp(raw, f.tensors[0].data, n) == 0);
    free(raw);
    cp_pt_close(&f);
    unlink(tmp);
}

static cp_index *import_one(const char *data, const char *tmpdir, int nbits, ref_index *ref)
{
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/colbert-miyazaki/nbits%d", data, nbits);
    snprintf(dst, sizeof dst, "%s/miyazaki%d.db", tmpdir, nbits);
    cp_error err = {0};
    CP_CHECK_OK(cp_index_import_colbert(src, dst, false, NULL, &err), err);
    /* A second import without --force refuses to overwrite. */
    CP_CHECK_INT(cp_index_import_colbert(src, dst, false, NULL, &err), CP_EEXISTS);
    CP_CHECK_OK(cp_index_import_colbert(src, dst, true, NULL, &err), err);
    CP_CHECK_OK(cp_index_check(dst, stderr, &err), err);
    cp_index *ix = NULL;
    CP_CHECK_OK(cp_index_open(dst, CP_OPEN_READONLY, &ix, &err), err);
    if (!open_ref(src, nbits, ref)) {
        cp_index_close(ix);
        return NULL;
    }
    return ix;
}

/* Every token of every passage equals the reference formula; codes and IVF match. */
static void check_against_reference(cp_index *ix, const ref_index *r, int64_t want_docs,
                                    int64_t want_tokens)
{
    cp_error err = {0};
    cp_index_stats s;
    CP_CHECK_OK(cp_index_stats_get(ix, &s, &err), err);
    CP_CHECK_INT(s.n_documents, want_docs);
    CP_CHECK_INT(s.n_tokens, want_tokens);
    CP_CHECK_INT(s.nbits, r->nbits);
    CP_CHECK_INT(s.dim, 128);
    CP_CHECK_INT(s.n_centroids, 1024);
    cp_snapshot *snap = cp_index_acquire_snapshot(ix);
    double ref[128], max_diff = 0;
    int64_t t = 0, code_mismatch = 0;
    for (int64_t d = 0; d < snap->n_slots; d++) {
        float *emb = NULL;
        int32_t n = 0;
        CP_CHECK_OK(cp_index_document_embeddings(ix, d, &emb, &n, &err), err);
        for (int32_t i = 0; i < n; i++, t++) {
            if (snap->codes[t] != cp_pt_int_at(&r->codes.tensors[0], t)) code_mismatch++;
            ref_vector(r, t, ref);
            for (int j = 0; j < 128; j++) {
                double diff = fabs(ref[j] - emb[i * 128 + j]);
                if (diff > max_diff) max_diff = diff;
            }
        }
        free(emb);
    }
    CP_CHECK_INT(t, want_tokens);
    CP_CHECK_INT(code_mismatch, 0);
    printf("nbits=%d: %lld tokens, max |decompressed - reference formula| = %.3g\n", r->nbits,
           (long long)t, max_diff);
    CP_CHECK(max_diff < 1e-6);

    /* The IVF rebuilt from codes equals the file's pid IVF (lengths delimit the lists). */
    const cp_pt_tensor *ivf = &r->ivf.tensors[0], *lens = &r->ivf.tensors[1];
    CP_CHECK_INT(lens->numel, snap->codec.n_centroids);
    int64_t pos = 0, bad = 0;
    for (int64_t c = 0; c < lens->numel && c < snap->codec.n_centroids; c++) {
        int64_t len = cp_pt_int_at(lens, c);
        int64_t lo = snap->ivf_offsets[c], hi = snap->ivf_offsets[c + 1];
        if (hi - lo != len) bad++;
        for (int64_t i = 0; i < len && i < hi - lo && pos + i < ivf->numel; i++)
            if (cp_pt_int_at(ivf, pos + i) != snap->ivf_docs[lo + i]) bad++;
        pos += len;
    }
    CP_CHECK_INT(bad, 0);
    cp_snapshot_release(snap);
}

/* Passages present in both imports (same text) with the same token count: mean cosine of
 * corresponding token vectors, nbits=4 vs nbits=8. */
static void compare_4_vs_8(cp_index *a, cp_index *b)
{
    cp_snapshot *sa = cp_index_acquire_snapshot(a), *sb = cp_index_acquire_snapshot(b);
    cp_error err = {0};
    double sum = 0, min_cos = 1;
    int64_t n = 0, shared = 0;
    for (int64_t db = 0; db < sb->n_slots; db++) {
        char *eb = NULL;
        CP_CHECK_OK(cp_index_external_id(b, db, &eb, &err), err);
        cp_document_info ib;
        if (!eb || cp_index_document_get(b, eb, &ib, &err) != CP_OK) {
            free(eb);
            continue;
        }
        for (int64_t da = 0; da < sa->n_slots; da++) {
            char *ea = NULL;
            cp_document_info ia;
            if (cp_index_external_id(a, da, &ea, &err) != CP_OK) continue;
            bool same = cp_index_document_get(a, ea, &ia, &err) == CP_OK && ia.text && ib.text &&
                        !strcmp(ia.text, ib.text) && ia.n_tokens == ib.n_tokens;
            if (ia.external_id) cp_document_info_free(&ia);
            free(ea);
            if (!same) continue;
            shared++;
            float *va, *vb;
            int32_t na, nb;
            CP_CHECK_OK(cp_index_document_embeddings(a, da, &va, &na, &err), err);
            CP_CHECK_OK(cp_index_document_embeddings(b, db, &vb, &nb, &err), err);
            for (int32_t i = 0; i < na && i < nb; i++) {
                double dot = 0;
                for (int j = 0; j < 128; j++) dot += (double)va[i * 128 + j] * vb[i * 128 + j];
                sum += dot;
                if (dot < min_cos) min_cos = dot;
                n++;
            }
            free(va);
            free(vb);
            break;
        }
        cp_document_info_free(&ib);
        free(eb);
    }
    double mean = n ? sum / (double)n : 0;
    printf("nbits4 vs nbits8: %lld shared passages, %lld token pairs, mean cosine %.4f, min %.4f\n",
           (long long)shared, (long long)n, mean, min_cos);
    /* The two folders were built from different Wikipedia revisions: only 5 passages have the
     * same text (595 token pairs). Measured mean cosine 0.991, min 0.918. */
    CP_CHECK(shared >= 5);
    CP_CHECK(mean > 0.98);
    CP_CHECK(min_cos > 0.85);
    cp_snapshot_release(sa);
    cp_snapshot_release(sb);
}

static void check_documents(cp_index *ix)
{
    cp_error err = {0};
    char *ext = NULL;
    CP_CHECK_OK(cp_index_external_id(ix, 0, &ext, &err), err);
    cp_document_info info;
    CP_CHECK_OK(cp_index_document_get(ix, ext ? ext : "", &info, &err), err);
    CP_CHECK(info.text && strstr(info.text, "Hayao Miyazaki") == info.text);
    CP_CHECK(info.metadata_json && strstr(info.metadata_json, "\"colbert_pid\":0"));
    CP_CHECK(info.metadata_json && strstr(info.metadata_json, "document_id"));
    int64_t id = -1;
    CP_CHECK_OK(cp_index_doc_id(ix, ext ? ext : "", &id, &err), err);
    CP_CHECK_INT(id, 0);
    cp_document_info_free(&info);
    free(ext);
    char *enc = cp_index_meta_get(ix, "encoder");
    CP_CHECK(enc && strstr(enc, "colbert-ir/colbertv2.0"));
    free(enc);
}

/* End to end on real ColBERTv2 vectors: a passage's own first 32 tokens, used as a query,
 * find that passage first, both with PLAID's default pipeline and exhaustively. */
static void check_self_retrieval(cp_index *ix)
{
    cp_error err = {0};
    int found_plaid = 0, found_exact = 0, tried = 0;
    for (int64_t d = 0; d < 121; d += 12) {
        float *emb = NULL;
        int32_t n = 0;
        if (cp_index_document_embeddings(ix, d, &emb, &n, &err) != CP_OK) continue;
        int nq = n < 32 ? n : 32;
        cp_search_params params;
        cp_hit hits[10];
        int n_hits = 0;
        tried++;
        cp_search_params_init(&params, 10);
        if (cp_index_search(ix, emb, nq, 128, &params, hits, &n_hits, NULL, &err) == CP_OK &&
            n_hits > 0 && hits[0].doc_id == d)
            found_plaid++;
        params.exact = true;
        if (cp_index_search(ix, emb, nq, 128, &params, hits, &n_hits, NULL, &err) == CP_OK &&
            n_hits > 0 && hits[0].doc_id == d)
            found_exact++;
        free(emb);
    }
    printf("self-retrieval on the nbits=4 import: PLAID %d/%d, exact %d/%d at rank 1\n",
           found_plaid, tried, found_exact, tried);
    CP_CHECK_INT(found_exact, tried);
    CP_CHECK_INT(found_plaid, tried);
}

static void check_bad_folders(const char *data, const char *tmpdir)
{
    cp_error err = {0};
    char dst[1024];
    snprintf(dst, sizeof dst, "%s/bad.db", tmpdir);
    CP_CHECK_INT(cp_index_import_colbert(tmpdir, dst, false, NULL, &err), CP_ENOTFOUND);
    CP_CHECK(strstr(err.message, "metadata.json") != NULL);
    struct stat sb;
    CP_CHECK(stat(dst, &sb) != 0); /* nothing left behind */
    /* A .pt file cut short is refused naming it. */
    char cut[1024], cmd[8192];
    snprintf(cut, sizeof cut, "%s/cut", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/colbert-miyazaki/nbits4/* '%s'/ && "
             "chmod u+w '%s'/* && truncate -s 500000 '%s/0.residuals.pt'", cut, data, cut, cut, cut);
    if (system(cmd) == 0) {
        CP_CHECK(cp_index_import_colbert(cut, dst, false, NULL, &err) == CP_EFORMAT);
        CP_CHECK(strstr(err.message, "0.residuals.pt") != NULL);
        CP_CHECK(stat(dst, &sb) != 0);
    }
}

int main(void)
{
    const char *data = cp_test_data();
    char probe[1024];
    struct stat sb;
    snprintf(probe, sizeof probe, "%s/colbert-miyazaki/nbits4/metadata.json", data);
    if (stat(probe, &sb) != 0) {
        printf("FAIL: the fixture %s is missing (tests/data)\n", probe);
        return 1;
    }
    char *tmpdir = st_tempdir("test_import_colbert");
    snprintf(probe, sizeof probe, "%s/colbert-miyazaki/nbits4", data);
    check_zip_bytes(probe);
    ref_index r4 = {0}, r8 = {0};
    cp_index *i4 = import_one(data, tmpdir, 4, &r4);
    cp_index *i8 = import_one(data, tmpdir, 8, &r8);
    if (i4) check_against_reference(i4, &r4, 121, 15899);
    if (i8) check_against_reference(i8, &r8, 78, 10366);
    if (i4) check_documents(i4);
    if (i4) check_self_retrieval(i4);
    if (i4 && i8) compare_4_vs_8(i4, i8);
    check_bad_folders(data, tmpdir);
    cp_index_close(i4);
    cp_index_close(i8);
    if (i4) close_ref(&r4);
    if (i8) close_ref(&r8);
    int rc = CP_TEST_RESULT();
    if (rc == 0) st_rm_rf(tmpdir);
    free(tmpdir);
    return rc;
}
