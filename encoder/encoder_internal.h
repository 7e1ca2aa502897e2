/*
 * Encoder internals: the backend interface behind cp_encoder. Each model kind (static word
 * vectors, BERT) implements the vtable; encoder.c picks the backend from the directory's
 * files and forwards the public calls.
 */
#ifndef CP_ENCODER_INTERNAL_H
#define CP_ENCODER_INTERNAL_H

#include "colplaid/encoder.h"
#include "colplaid/window.h"

typedef struct cp_encoder_backend {
    const char *kind; /* "static", "bert" */
    cp_status (*encode)(cp_encoder *enc, cp_text_kind kind, const char *const *texts, size_t n,
                        cp_embeddings *out, cp_error *err);
    cp_status (*tokenize)(cp_encoder *enc, cp_text_kind kind, bool raw, const char *text,
                          int32_t **ids, size_t *n_ids, cp_error *err);
    const char *(*token_text)(const cp_encoder *enc, int32_t id);
    void (*free)(cp_encoder *enc);
    /* Windows (encoder/window.c). units: the model tokens of a piece of document text,
     * without specials and without truncation, as encode_units takes them (static: the
     * known words, punctuation dropped; BERT: WordPiece ids). encode_units: encode
     * ids[0, n) (at most position_limit of them) as one document and hand out the rows of
     * ids[keep_from, keep_to) only (BERT adds [CLS] [D] rows when keep_from == 0 and the
     * [SEP] row when keep_to == n, as a whole-document encode would, and drops skiplist
     * rows). */
    cp_status (*units)(cp_encoder *enc, const char *text, size_t len, int32_t **ids, size_t *n,
                       cp_error *err);
    cp_status (*encode_units)(cp_encoder *enc, const int32_t *ids, size_t n, size_t keep_from,
                              size_t keep_to, cp_embeddings *out, cp_error *err);
} cp_encoder_backend;

struct cp_encoder {
    const cp_encoder_backend *backend;
    void *impl; /* the backend's own state */
    int dim;
    int query_maxlen;
    int doc_maxlen;
    int centroid_scale; /* cp_encoder_centroid_scale; backends that do not set it leave 1 */
    int threads;
    int position_limit;       /* most units one encode_units call takes */
    cp_window_options window; /* the model config's default windows (window 0: none) */
    char *fingerprint;        /* JSON, malloc'd: the backend's legacy object, then version 2 */
    /* Fingerprints (fingerprint.c): the backend sets content_hash (everything that changes
     * the vectors) and may set config_dim (the model config's truncate_dim, 0: none);
     * cp_encoder_load keeps the backend's object as legacy_fingerprint. dim above is the
     * head's own output; out_dim (0: dim) is what cp_encoder_encode hands out, the first
     * out_dim of them renormalised (--dim, Matryoshka). */
    char *legacy_fingerprint;
    uint64_t content_hash;
    int config_dim;
    int out_dim;
};

#define CP_FINGERPRINT_VERSION 2

/* fingerprint.c */
uint64_t cp_fp_hash_bytes(const void *data, size_t n, uint64_t seed);
void cp_fp_mix(uint64_t *h, uint64_t v);
void cp_fp_mix_str(uint64_t *h, const char *s);
/* Mix dir/name's name and bytes into *h; a missing file is skipped (*present false). */
cp_status cp_fp_mix_file(uint64_t *h, const char *dir, const char *name, bool *present,
                         cp_error *err);
/* The same for every file of dir whose name ends in suffix, in name order. */
cp_status cp_fp_mix_files_with_suffix(uint64_t *h, const char *dir, const char *suffix,
                                      cp_error *err);
int cp_encoder_out_dim(const cp_encoder *enc);
/* enc->fingerprint = the version 2 object from legacy_fingerprint, dims and content_hash. */
cp_status cp_encoder_build_fingerprint(cp_encoder *enc, cp_error *err);

/* Backend loaders: return CP_ENOTFOUND if dir is not a model of their kind (so the next
 * loader is tried), any other error if it is but cannot be loaded. */
cp_status cp_static_encoder_load(const char *dir, const cp_encoder_options *opts,
                                 cp_encoder *enc, cp_error *err);
cp_status cp_bert_encoder_load(const char *dir, const cp_encoder_options *opts, cp_encoder *enc,
                               cp_error *err);

#endif
