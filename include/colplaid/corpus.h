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
#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

typedef struct cp_corpus cp_corpus;

/* One validation of documents for every door (the CLI's corpus reader and the HTTP write
 * routes): an external id is 1 to CP_DOCUMENT_ID_MAX_BYTES bytes, and a document's text is
 * not blank (only spaces, tabs and line breaks). */
#define CP_DOCUMENT_ID_MAX_BYTES 1024

/* NULL when id is a valid external id, else why not ("is empty", "is longer than ..."). */
static inline const char *cp_document_id_problem(const char *id)
{
    if (!id || !id[0]) return "is empty";
    for (size_t n = 0; id[n]; n++)
        if (n == CP_DOCUMENT_ID_MAX_BYTES) return "is longer than 1024 bytes";
    return NULL;
}

/* Whether text is NULL, empty or only spaces, tabs and line breaks. */
static inline bool cp_document_text_blank(const char *text)
{
    if (text)
        for (; *text; text++)
            if (*text != ' ' && *text != '\t' && *text != '\r' && *text != '\n') return false;
    return true;
}

typedef struct cp_corpus_record {
    const char *id;            /* never NULL; passes cp_document_id_problem */
    const char *title;         /* NULL if none */
    const char *text;          /* never NULL; blank only when the title is not (a title-only
                                  record) */
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
