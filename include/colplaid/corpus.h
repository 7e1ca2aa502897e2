/*
 * Reading text corpora and query files: BEIR folders (corpus.jsonl), JSONL files of
 * {"id"|"_id", "text", "title"?, "metadata"?} and TSV files of id<TAB>text.
 * Records stream from disk one at a time; memory stays bounded whatever the file size.
 *
 * Thread safety: a cp_corpus belongs to one thread.
 */
#ifndef COLPLAID_CORPUS_H
#define COLPLAID_CORPUS_H

#include <stdbool.h>
#include <stdint.h>

#include "colplaid/error.h"

typedef struct cp_corpus cp_corpus;

typedef struct cp_corpus_record {
    const char *id;            /* never NULL or empty */
    const char *title;         /* NULL if none */
    const char *text;          /* never NULL (may be empty for a title-only record) */
    const char *metadata_json; /* a JSON object as text, or NULL */
    int64_t line;              /* 1-based line number in the file, for messages */
} cp_corpus_record;

/* path: a BEIR folder (reads PATH/corpus.jsonl), a .jsonl file or a .tsv file. */
cp_status cp_corpus_open(const char *path, cp_corpus **out, cp_error *err);
/* Next record; *has = false at the end. The record's strings live until the next call.
 * A malformed line fails with a message naming file and line. */
cp_status cp_corpus_next(cp_corpus *c, cp_corpus_record *rec, bool *has, cp_error *err);
cp_status cp_corpus_rewind(cp_corpus *c, cp_error *err);
const char *cp_corpus_path(const cp_corpus *c); /* the file actually read */
void cp_corpus_close(cp_corpus *c);

#endif
