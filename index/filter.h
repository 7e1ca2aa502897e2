/*
 * Metadata filters (index/filter.c): a JSON filter compiled to one parameterised SQL
 * statement; cp_index_filter and delete-by-filter run it.
 */
#ifndef CP_FILTER_H
#define CP_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "colplaid/error.h"

/* A JSON filter compiled to one parameterised SQL statement over `documents` that selects
 * the sorted internal ids of matching live documents (index/filter.c). */
typedef struct cp_filter_sql cp_filter_sql;
cp_status cp_filter_compile(const char *filter_json, size_t len, cp_filter_sql **out,
                            cp_error *err);
const char *cp_filter_sql_text(const cp_filter_sql *f);
void cp_filter_sql_free(cp_filter_sql *f);
/* Run a compiled filter on an open SQLite connection (a sqlite3 *, untyped here so that
 * this header does not need sqlite3.h). */
cp_status cp_filter_run(const cp_filter_sql *f, void *sqlite_db, int64_t **doc_ids, size_t *n_ids,
                        cp_error *err);

/* The live documents of the index file at path whose metadata matches filter_json, on a
 * private read-only connection (cp_index_filter). */
cp_status cp_filter_ids(const char *path, const char *filter_json, int64_t **doc_ids, size_t *n_ids,
                        cp_error *err);

#endif
