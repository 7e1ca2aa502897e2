/*
 * The in-memory snapshot (index/snapshot.c) that searches read: immutable once published,
 * flat arrays, reference-counted so a writer can publish the next snapshot while searches
 * still hold the previous one. Loaded from storage, or derived from the current one by a
 * live write.
 */
#ifndef CP_SNAPSHOT_H
#define CP_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "calib_settings.h"
#include "codec.h"
#include "storage.h"

/* Arrays shared by successive snapshots of a live index (index/snapshot.c). A live write
 * appends beyond the end that published snapshots read (cap leaves room), so the next
 * snapshot shares the same memory instead of copying it; the arrays are freed with the
 * last snapshot that uses them. a/b are plain arrays; strings (if any) is an array of
 * n_strings malloc'd strings, freed too. */
typedef struct cp_shared {
    _Atomic int refcount;
    void *a, *b;
    char **strings;
    int64_t n_strings;
    int64_t cap; /* elements a/b/strings have room for (tokens or slots) */
} cp_shared;

void cp_shared_release(cp_shared *sh);

typedef struct cp_snapshot {
    _Atomic int refcount;
    cp_codec codec;
    cp_calibration calibration; /* from meta at load; invalid: PLAID's defaults */

    /* Documents by slot. A slot is the in-memory position of a document; its internal id
     * (the file's doc_id, the id every public API speaks) is file_ids[slot]. A loaded
     * snapshot numbers the live documents densely (slot = rank of the internal id), so
     * memory follows the live documents, not the highest id ever used; live writes append
     * slots. file_ids is strictly increasing, so slot order is internal-id order and
     * cp_snapshot_slot_of is a binary search. file_ids NULL (hand-built snapshots in
     * tests): slot = internal id. A deleted slot has deleted[slot] = 1. */
    int64_t n_slots;
    int64_t n_live;
    int64_t *doc_offsets; /* n_slots + 1: tokens of doc d are [doc_offsets[d], doc_offsets[d+1]) */
    uint8_t *deleted;     /* n_slots */
    char **external_ids;  /* n_slots; NULL for unused slots */
    int32_t *file_ids;    /* n_slots, or NULL (identity) */
    int64_t next_file_id; /* the internal id the next appended slot gets (meta next_doc_id) */

    /* Token data, in internal-id order. */
    int64_t n_tokens;
    int32_t *codes;     /* n_tokens */
    uint8_t *residuals; /* n_tokens x cp_residual_bytes(dim, nbits), natural bit order */

    /* IVF in CSR form: centroid c -> sorted unique live doc ids ivf_docs[ivf_offsets[c] ..
     * ivf_offsets[c+1]). Doc ids are int32 (an index holds < 2^31 document slots). */
    int64_t *ivf_offsets; /* n_centroids + 1 */
    int32_t *ivf_docs;

    /* --- Live-index fields (index/live.c). A snapshot loaded from the file has none of
     * these set beyond ivf_base_slots = n_slots. In a snapshot derived by a write:
     * - a deleted slot may still own tokens (its old version, until compaction or reload):
     *   readers must test deleted[], as search does;
     * - the IVF above covers slots [0, ivf_base_slots) and may still list deleted docs
     *   (ivf_stale of them); slots [ivf_base_slots, n_slots) are in the delta IVF below,
     *   same CSR form (NULL when empty). Stage 1 reads both. */
    int64_t ivf_base_slots;
    int64_t *ivf_delta_offsets; /* n_centroids + 1, or NULL */
    int32_t *ivf_delta_docs;
    int64_t ivf_stale;
    /* Owners of shared arrays (NULL: the arrays belong to this snapshot alone). */
    cp_shared *codec_owner; /* a = codec.centroids */
    cp_shared *tok_owner;   /* a = codes, b = residuals */
    cp_shared *slot_owner;  /* a = doc_offsets, b = file_ids, strings = external_ids */
    cp_shared *ivf_owner;   /* a = ivf_offsets, b = ivf_docs */
    cp_shared *delta_owner; /* a = ivf_delta_offsets, b = ivf_delta_docs */
} cp_snapshot;

/* The next snapshot of a live index: shares cur's codec, token, slot and IVF arrays (the
 * token and slot arrays with room for add_tokens / add_slots more, copied once into larger
 * arrays when they lack it: amortised O(1) per token), copies deleted[] and gives the new
 * slots no tokens yet. The caller appends, then calls cp_snapshot_refresh_ivf. Call with
 * the index's write lock held: it reuses the space beyond cur's end. */
cp_status cp_snapshot_derive(const cp_snapshot *cur, int64_t add_slots, int64_t add_tokens,
                             cp_snapshot **out, cp_error *err);

/* After a derive and the caller's changes: rebuild the delta IVF for new slots (O(their
 * tokens + K)), or the whole IVF when the delta or the stale entries have grown large
 * (amortised O(1) per token). */
cp_status cp_snapshot_refresh_ivf(cp_snapshot *snap, bool added, cp_error *err);

/* The internal id (file doc_id) of a slot, and the slot of an internal id (-1 when the
 * snapshot has no slot for it: unknown, removed by compaction, or newer than the
 * snapshot). */
static inline int64_t cp_snapshot_file_id(const cp_snapshot *snap, int64_t slot)
{
    return snap->file_ids ? snap->file_ids[slot] : slot;
}
int64_t cp_snapshot_slot_of(const cp_snapshot *snap, int64_t file_id);

void cp_snapshot_retain(cp_snapshot *snap);
void cp_snapshot_release(cp_snapshot *snap);

/* Build ivf_offsets/ivf_docs from codes and doc_offsets (PLAID.md 1.10). */
cp_status cp_snapshot_build_ivf(cp_snapshot *snap, cp_error *err);

/* Read every segment of store into a new snapshot (refcount 1), with the IVF built. */
cp_status cp_store_load_snapshot(cp_store *store, cp_snapshot **out, cp_error *err);

#endif
