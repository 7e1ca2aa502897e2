/*
 * Helpers shared by the subcommands: uniform error reporting and exit statuses,
 * option value parsing that names the bad option, and the text-corpus document source.
 */
#ifndef CP_CLI_COMMON_H
#define CP_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "colplaid/encoder.h"
#include "colplaid/index.h"

enum { CP_EXIT_OK = 0, CP_EXIT_FAILURE = 1, CP_EXIT_USAGE = 2 };

/* "colplaid <command>: <message>" on stderr; returns CP_EXIT_USAGE. */
int cp_cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "colplaid <command>: <err->message>" on stderr; returns CP_EXIT_FAILURE, or for CP_EMODEL
 * (a model that is not the index's) CP_EXIT_USAGE after a line naming the override. */
int cp_cli_report(const char *command, const cp_error *err);

/* Load model to encode texts for index ix (CLI search, eval, index add): its fingerprint
 * compared with the index's (cp_encoder_match) and its dims set to those the index
 * recorded (--dim). A mismatch is CP_EMODEL (cp_cli_report: exit 2, with the override
 * named), or with allow_mismatch (--allow-model-mismatch) a warning on stderr, the model
 * then encoding the index's dims if it can. */
cp_status cp_cli_load_model_for_index(const char *command, const char *model, int threads,
                                      cp_index *ix, bool allow_mismatch, cp_encoder **out,
                                      cp_error *err);

/* Strict number parsing: the whole string must be a number within [min, max]. */
bool cp_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);
bool cp_cli_parse_float(const char *s, double *out);

/* A cp_doc_source over a text corpus (cp_corpus) whose documents are encoded with enc
 * (title and text joined as "title text"), in batches and in parallel. The source does not
 * own enc. */
cp_status cp_text_source_open(const char *corpus_path, cp_encoder *enc, int threads,
                              cp_doc_source *out, cp_error *err);
/* The same, encoding every document as windows (cp_encoder_encode_windows) when window is
 * not NULL and window->window > 0; CP_EINVAL when the settings do not suit the model. */
cp_status cp_text_source_open_windowed(const char *corpus_path, cp_encoder *enc, int threads,
                                       const cp_window_options *window, cp_doc_source *out,
                                       cp_error *err);

/* Skip, as they are read and before any encoding, the documents that are not in shard
 * index of count (cp_shard_of): a shard build encodes only its own documents. src must
 * come from cp_text_source_open*. */
void cp_text_source_keep_shard(cp_doc_source *src, uint32_t index, uint32_t count);

#endif
