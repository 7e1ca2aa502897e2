/*
 * Windowed documents, the storage side (index/windows.c; colplaid/window.h).
 */
#ifndef CP_WINDOWS_H
#define CP_WINDOWS_H

#include "colplaid/index.h"
#include "storage.h"

/* Store the windows of docs[i] (those with n_windows > 0) for internal id first + i, in the
 * caller's transaction; CP_EINVAL when a document's windows do not tile its rows. */
cp_status cp_windows_insert(cp_store *store, const cp_document *docs, size_t n, int64_t first,
                            cp_error *err);
/* Drop the windows of the tombstones of a segment (before compaction deletes their rows). */
cp_status cp_windows_drop_tombstones(cp_store *store, int64_t segment_id, cp_error *err);
/* CP_EINVAL unless w[0, n) tile rows [0, n_tokens) in order with sound character spans. */
cp_status cp_windows_validate(const cp_window *w, int32_t n, int32_t n_tokens, const char *what,
                              cp_error *err);
/* meta "windows" for settings w (malloc'd). */
char *cp_windows_meta_json(const cp_window_options *w, cp_doc_score score);

#endif
