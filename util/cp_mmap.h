/*
 * A whole file memory-mapped read-only: how the readers of large inputs (.npy, .pt,
 * safetensors, GloVe JSON) see their file, so that gigabytes stream through the page cache
 * instead of being copied into memory.
 *
 * Thread safety: a mapping is read-only; any number of threads may read it.
 */
#ifndef CP_MMAP_H
#define CP_MMAP_H

#include <stddef.h>

#include "colplaid/error.h"

typedef struct cp_mapped_file {
    void *data; /* NULL for an empty file */
    size_t size;
} cp_mapped_file;

/* Map path in full (MAP_PRIVATE, PROT_READ); an empty file gives data NULL and size 0.
 * Errors name path: CP_ENOTFOUND when it does not exist, CP_EIO when it cannot be opened,
 * is not a regular file or cannot be mapped. On failure *out is zeroed. */
cp_status cp_file_map(const char *path, cp_mapped_file *out, cp_error *err);

/* Unmap and zero m; a zeroed or empty mapping is fine. */
void cp_file_unmap(cp_mapped_file *m);

#endif
