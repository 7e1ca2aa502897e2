/*
 * Errors as values. Every fallible colplaid function returns a cp_status and, when
 * given a cp_error, fills it with a message written for the person who has to fix
 * the input ("corpus.jsonl line 12: field \"id\" is missing"), never for the code.
 *
 * Thread safety: a cp_error belongs to the caller; nothing here has global state.
 */
#ifndef CP_ERROR_H
#define CP_ERROR_H

#include <stddef.h>

typedef enum cp_status {
    CP_OK = 0,
    CP_EINVAL,       /* bad argument or bad input data */
    CP_EIO,          /* the operating system refused a read or write */
    CP_ENOMEM,       /* an allocation failed */
    CP_EFORMAT,      /* a file is not of the format it should be */
    CP_ECORRUPT,     /* an index file is damaged */
    CP_EEXISTS,      /* the target exists already */
    CP_ENOTFOUND,    /* no such index, document or file */
    CP_EDIM,         /* vectors of the wrong dimension */
    CP_EBUSY,        /* locked by another writer, or a queue is full */
    CP_EREADONLY,    /* the index or file system is read-only */
    CP_ENOSPC,       /* the disk is full */
    CP_EUNSUPPORTED, /* a valid request this build cannot serve */
    CP_EINTERNAL,    /* a bug: please report it */
    CP_EMODEL,       /* the model is not the one an index was built with (fingerprints) */
    CP_STATUS_COUNT
} cp_status;

#define CP_ERROR_MESSAGE_MAX 512

typedef struct cp_error {
    cp_status code;
    char message[CP_ERROR_MESSAGE_MAX];
} cp_error;

/* A stable upper-case name for a status, e.g. "DIMENSION_MISMATCH" (used in HTTP errors). */
const char *cp_status_name(cp_status code);

/* Fill err (which may be NULL) and return code, so callers can write
 * `return cp_error_set(err, CP_EINVAL, "...", ...);`. */
cp_status cp_error_set(cp_error *err, cp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context to an existing message: "reading x.npy: <old message>". */
cp_status cp_error_prefix(cp_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to CP_OK with an empty message. */
void cp_error_clear(cp_error *err);

#endif
