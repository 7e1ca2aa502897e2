/*
 * The open index (index/index.c) as the rest of index/ sees it: its current view (snapshot +
 * external-id map), published atomically for readers, and the writer's lock and store.
 */
#ifndef CP_INDEX_HANDLE_H
#define CP_INDEX_HANDLE_H

#include "snapshot.h"
#include "storage.h"

/* The current snapshot of an open index, retained for the caller (release when done). */
cp_snapshot *cp_index_acquire_snapshot(cp_index *index);

/* Make snap (refcount 1, owned by the index from now on) the index's current snapshot:
 * builds its external-id map, then swaps it in atomically for readers; searches holding
 * the previous snapshot keep it until they release it (index/index.c). */
cp_status cp_index_publish_snapshot(cp_index *index, cp_snapshot *snap, cp_error *err);

/* Writers of one index (index/live.c) take this lock: a cp_index may be shared by server
 * threads. */
void cp_index_write_lock(cp_index *index);
void cp_index_write_unlock(cp_index *index);

/* The next view (snapshot + external-id map), prepared before the write commits so that
 * after the commit only a pointer swap remains (which cannot fail). The map is updated
 * incrementally from the current one: removed slots out, slots >= first_new_slot in. */
typedef struct cp_view_next cp_view_next;
cp_status cp_index_view_prepare(cp_index *index, cp_snapshot *next, const int64_t *removed,
                                size_t n_removed, int64_t first_new_slot, cp_view_next **out,
                                cp_error *err);
void cp_index_view_swap(cp_index *index, cp_view_next *v); /* consumes v */
void cp_index_view_discard(cp_view_next *v);               /* consumes v and its snapshot */

/* The file path the index was opened from (owned by the index). */
const char *cp_index_path(cp_index *index);

/* The writer store of an index opened with CP_OPEN_WRITE (NULL otherwise): write paths
 * (live.c) use it under cp_index_write_lock. */
cp_store *cp_index_writer_store(cp_index *index);
/* Set one meta key in its own transaction under the write lock (set-model, hybrid alpha). */
cp_status cp_index_write_meta(cp_index *index, const char *key, const char *value, cp_error *err);

/* A read-only connection from the index's pool (opened when none is free), and back. Use
 * it from one thread at a time. */
cp_status cp_index_pool_get(cp_index *index, cp_store **out, cp_error *err);
void cp_index_pool_put(cp_index *index, cp_store *s);

#endif
