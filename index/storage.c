/*
 * The SQLite index file: schema creation, opening with format checks, meta, transactions,
 * segment blobs (zstd + checksum) and loading everything into an in-memory snapshot.
 *
 * Why it exists: every other file of index/ goes through storage.h, so the schema and its
 * invariants (docs/index-format.md) are enforced in one place.
 *
 * Invariants kept here
 * - A file is a colplaid index only if its SQLite header is intact, application_id is
 *   CP_APPLICATION_ID and user_version is a format this build knows; anything else is
 *   refused with CP_EFORMAT / CP_ECORRUPT naming the file, before any table is read.
 * - Internal document ids come from meta.next_doc_id and only grow: never reused.
 * - A segment's blobs decompress to exactly the sizes its n_docs / n_tokens columns say and
 *   hash to its checksum; the loader refuses a segment that does not.
 * - A store opened for writing (cp_store_open with CP_OPEN_WRITE) holds an exclusive
 *   flock() on "PATH-lock" for its whole life, so a second writing process gets CP_EBUSY.
 *   cp_store_create does not lock: it makes a new file that nobody else knows yet (the
 *   builder renames it into place when complete).
 * - No code here opens a second descriptor of the database file: closing it would drop
 *   the POSIX locks SQLite holds for every connection of this process.
 * - Host byte order must be little-endian (the blobs are little-endian arrays).
 */
#include "codec.h"
#include "storage.h"
#include "windows.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "colplaid index files are little-endian; this host is not"
#endif

#define CP_APPLICATION_ID 0x43504C44 /* "CPLD" */
#define ZSTD_LEVEL 3

struct cp_store {
    sqlite3 *db;
    char *path;
    int flags;
    int lock_fd; /* -1 unless opened for writing */
    bool in_txn;
    int dim, nbits;
    int64_t n_centroids;
    /* The codec variant and its parameters, from meta "codec" (format 2; a format 1 file
     * is COLBERT), and the bytes per token after the code they imply. */
    int variant;
    float scale_log_min, scale_log_max;
    int token_bytes;
    /* The lexical side (docs/hybrid.md): the file has the FTS5 table "lexical", which
     * every write below keeps equal to the live documents' texts. */
    bool lexical;
};

/* The decode buffers and the zstd context live as long as the iterator: segments are
 * megabytes each, and a fresh malloc per segment would cost a page-fault storm per load. */
struct cp_segment_iter {
    cp_store *store;
    sqlite3_stmt *stmt;
    ZSTD_DCtx *dctx;
    void *buf[4]; /* doc_ids, doclens, codes, residuals */
    size_t cap[4];
    cp_segment_data cur;
};

/* ------------------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------------------- */

static cp_status status_of_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL: return CP_ENOSPC;
    case SQLITE_READONLY: return CP_EREADONLY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return CP_ECORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return CP_EBUSY;
    case SQLITE_IOERR: return CP_EIO;
    case SQLITE_NOMEM: return CP_ENOMEM;
    case SQLITE_CANTOPEN: return CP_ENOTFOUND;
    case SQLITE_CONSTRAINT: return CP_EEXISTS;
    default: return CP_EINTERNAL;
    }
}

cp_status cp_store_sql_error(cp_store *store, int rc, const char *what, cp_error *err)
{
    cp_status st = status_of_sqlite(rc);
    const char *msg = store && store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc);
    const char *path = store ? store->path : "index";
    switch (st) {
    case CP_ENOSPC:
        return cp_error_set(err, st, "%s: %s: the disk is full (%s)", path, what, msg);
    case CP_EREADONLY:
        return cp_error_set(err, st, "%s: %s: the index file or its folder is read-only (%s)",
                            path, what, msg);
    case CP_ECORRUPT:
        return cp_error_set(err, st, "%s: %s: the index file is damaged (%s)", path, what, msg);
    case CP_EBUSY:
        return cp_error_set(err, st, "%s: %s: the index is locked by another process (%s)",
                            path, what, msg);
    default: return cp_error_set(err, st, "%s: %s: %s", path, what, msg);
    }
}

struct sqlite3 *cp_store_sqlite(cp_store *store)
{
    return store->db;
}

const char *cp_store_path(const cp_store *store)
{
    return store->path;
}

static cp_status exec_sql(cp_store *s, const char *sql, const char *what, cp_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? CP_OK : cp_store_sql_error(s, rc, what, err);
}

/* ------------------------------------------------------------------------------------
 * Checksum
 * --------------------------------------------------------------------------------- */

/* Four independent lanes over 32-byte blocks so the multiply chains overlap (about 4x the
 * speed of one chain), merged into one value, then single words and the tail. The exact
 * definition is in docs/index-format.md; changing it changes the file format. */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * UINT64_C(0x9E3779B97F4A7C15);
    return h ^ (h >> 29);
}

uint64_t cp_checksum64(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    if (n >= 32) {
        uint64_t l[4] = {h, h ^ 1, h ^ 2, h ^ 3};
        for (; n >= 32; p += 32, n -= 32) {
            uint64_t w[4];
            memcpy(w, p, 32);
            l[0] = mix(l[0], w[0]);
            l[1] = mix(l[1], w[1]);
            l[2] = mix(l[2], w[2]);
            l[3] = mix(l[3], w[3]);
        }
        h = mix(mix(mix(l[0], l[1]), l[2]), l[3]);
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h, w);
    }
    uint64_t tail = 0;
    if (n) memcpy(&tail, p, n);
    h = (h ^ tail ^ ((uint64_t)n << 56)) * UINT64_C(0x9E3779B97F4A7C15);
    return h ^ (h >> 32);
}

/* ------------------------------------------------------------------------------------
 * Opening, creating, closing
 * --------------------------------------------------------------------------------- */

static cp_store *store_new(const char *path, int flags)
{
    cp_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->path = strdup(path);
    if (!s->path) {
        free(s);
        return NULL;
    }
    s->flags = flags;
    s->lock_fd = -1;
    return s;
}

void cp_store_close(cp_store *store)
{
    if (!store) return;
    if (store->in_txn) cp_store_rollback(store);
    sqlite3_close_v2(store->db);
    if (store->lock_fd >= 0) close(store->lock_fd); /* releases the writer lock */
    free(store->path);
    free(store);
}

/* The writer lock is an flock() on "PATH-lock" beside the index, never on the database
 * file itself: SQLite uses POSIX locks on the database, and closing any other descriptor of
 * that file would silently drop them for the whole process. The lock file is left in place
 * on close (removing it would race with a process about to lock it). */
static cp_status take_writer_lock(cp_store *s, cp_error *err)
{
    char lock_path[PATH_MAX];
    if (snprintf(lock_path, sizeof lock_path, "%s-lock", s->path) >= (int)sizeof lock_path)
        return cp_error_set(err, CP_EINVAL, "%s: path too long", s->path);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0 && (errno == EROFS || errno == EACCES))
        return cp_error_set(err, CP_EREADONLY, "%s is on a read-only location; cannot open it "
                            "for writing (%s)", s->path, strerror(errno));
    if (s->lock_fd < 0)
        return cp_error_set(err, CP_EIO, "%s: cannot create %s: %s", s->path, lock_path,
                            strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0) return CP_OK;
    int e = errno;
    if (e == EWOULDBLOCK)
        return cp_error_set(err, CP_EBUSY,
                            "%s is open for writing by another process; wait for it to finish "
                            "or open the index read-only",
                            s->path);
    return cp_error_set(err, CP_EIO, "%s: cannot lock %s: %s", s->path, lock_path, strerror(e));
}

static cp_status configure_connection(cp_store *s, cp_error *err)
{
    sqlite3_busy_timeout(s->db, 10000);
    sqlite3_extended_result_codes(s->db, 1);
    /* FULL: a committed add/delete survives power loss, not only a process crash. */
    return exec_sql(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;", "configuring", err);
}

static const char *schema_sql =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE codec(id INTEGER PRIMARY KEY CHECK (id = 1), centroids BLOB NOT NULL,"
    " bucket_cutoffs BLOB NOT NULL, bucket_weights BLOB NOT NULL, avg_residual REAL);"
    "CREATE TABLE segments(segment_id INTEGER PRIMARY KEY, n_docs INTEGER NOT NULL,"
    " n_tokens INTEGER NOT NULL, doc_ids BLOB NOT NULL, doclens BLOB NOT NULL,"
    " codes BLOB NOT NULL, residuals BLOB NOT NULL, checksum INTEGER NOT NULL);"
    "CREATE TABLE documents(doc_id INTEGER PRIMARY KEY, external_id TEXT NOT NULL,"
    " text TEXT, metadata TEXT, n_tokens INTEGER NOT NULL, segment_id INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX documents_live_external_id ON documents(external_id)"
    " WHERE deleted = 0;"
    "CREATE INDEX documents_segment ON documents(segment_id);";

static cp_status insert_codec(cp_store *s, const cp_codec *c, cp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO codec(id, centroids, bucket_cutoffs, bucket_weights,"
                                " avg_residual) VALUES (1, ?, ?, ?, ?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(s, rc, "writing the codec", err);
    int nb = 1 << c->nbits;
    sqlite3_bind_blob64(st, 1, c->centroids,
                        (sqlite3_uint64)c->n_centroids * (sqlite3_uint64)c->dim * sizeof(float),
                        SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, c->bucket_cutoffs, (int)((nb - 1) * sizeof(float)), SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, c->bucket_weights, (int)(nb * sizeof(float)), SQLITE_STATIC);
    sqlite3_bind_double(st, 4, c->avg_residual);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CP_OK : cp_store_sql_error(s, rc, "writing the codec", err);
}

static cp_status validate_codec(const char *path, const cp_codec *c, cp_error *err)
{
    if (c->nbits != 1 && c->nbits != 2 && c->nbits != 4 && c->nbits != 8)
        return cp_error_set(err, CP_EINVAL, "%s: nbits %d is not supported (1, 2, 4 or 8)", path,
                            c->nbits);
    if (c->dim <= 0 || c->dim % 8 != 0 || c->dim > 65536)
        return cp_error_set(err, CP_EINVAL, "%s: dimension %d is not a positive multiple of 8",
                            path, c->dim);
    if (c->n_centroids <= 0 || c->n_centroids > INT32_MAX || !c->centroids)
        return cp_error_set(err, CP_EINVAL, "%s: the codec has no centroids", path);
    return CP_OK;
}

/* meta "codec": {"variant": "colbert"} or {"variant": "scaled", "scale_log_min": x,
 * "scale_log_max": y}; %.9g round-trips a float exactly. */
static cp_status write_codec_meta(cp_store *s, const cp_codec *c, cp_error *err)
{
    char buf[160];
    if (c->variant == CP_CODEC_SCALED)
        snprintf(buf, sizeof buf,
                 "{\"variant\":\"scaled\",\"scale_log_min\":%.9g,\"scale_log_max\":%.9g}",
                 (double)c->scale_log_min, (double)c->scale_log_max);
    else
        snprintf(buf, sizeof buf, "{\"variant\":\"%s\"}", cp_codec_variant_name(c->variant));
    return cp_store_set_meta(s, "codec", buf, err);
}

static cp_status write_initial_meta(cp_store *s, const cp_codec *c, cp_error *err)
{
    char buf[64];
    cp_status cst = write_codec_meta(s, c, err);
    if (cst != CP_OK) return cst;
    struct { const char *key; long long v; } ints[] = {
        {"format_version", CP_INDEX_FORMAT_VERSION}, {"dim", c->dim}, {"nbits", c->nbits},
        {"n_centroids", c->n_centroids}, {"next_doc_id", 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(buf, sizeof buf, "%lld", ints[i].v);
        cp_status st = cp_store_set_meta(s, ints[i].key, buf, err);
        if (st != CP_OK) return st;
    }
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) {
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return cp_store_set_meta(s, "created_at", buf, err);
    }
    return CP_OK;
}

cp_status cp_store_create(const char *path, const cp_codec *codec, cp_store **out, cp_error *err)
{
    *out = NULL;
    cp_status st = validate_codec(path, codec, err);
    if (st != CP_OK) return st;
    struct stat sb;
    if (stat(path, &sb) == 0)
        return cp_error_set(err, CP_EEXISTS, "%s exists already", path);
    cp_store *s = store_new(path, CP_OPEN_WRITE);
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory creating %s", path);
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        st = cp_store_sql_error(s, rc, "creating the index file", err);
        cp_store_close(s);
        return st;
    }
    s->dim = codec->dim;
    s->nbits = codec->nbits;
    s->n_centroids = codec->n_centroids;
    s->variant = codec->variant;
    s->scale_log_min = codec->scale_log_min;
    s->scale_log_max = codec->scale_log_max;
    s->token_bytes = cp_codec_token_bytes(codec);
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode=WAL; PRAGMA application_id=%d;"
             " PRAGMA user_version=%d;", CP_APPLICATION_ID, CP_INDEX_FORMAT_VERSION);
    if ((st = configure_connection(s, err)) != CP_OK ||
        (st = exec_sql(s, pragmas, "creating the index file", err)) != CP_OK ||
        (st = cp_store_begin(s, err)) != CP_OK)
        goto fail;
    if ((st = exec_sql(s, schema_sql, "creating the schema", err)) != CP_OK ||
        (st = write_initial_meta(s, codec, err)) != CP_OK ||
        (st = insert_codec(s, codec, err)) != CP_OK ||
        (st = cp_store_commit(s, err)) != CP_OK)
        goto fail;
    *out = s;
    return CP_OK;
fail:
    cp_store_close(s);
    unlink(path);
    return st;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Look at the raw file header before SQLite parses it, so that a foreign or cut-short file
 * gets a message that says so rather than SQLite's generic "file is not a database". The
 * bytes are read through SQLite's own file handle: opening and closing a second descriptor
 * of the database would drop the POSIX locks other connections of this process hold. */
static cp_status check_file_header(cp_store *s, cp_error *err)
{
    static const char magic[16] = "SQLite format 3";
    const char *path = s->path;
    sqlite3_file *f = NULL;
    sqlite3_int64 size = 0;
    if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
        !f->pMethods || f->pMethods->xFileSize(f, &size) != SQLITE_OK)
        return cp_error_set(err, CP_EIO, "cannot read %s", path);
    if (size == 0)
        return cp_error_set(err, CP_EFORMAT, "%s is empty, not a colplaid index", path);
    uint8_t h[100] = {0};
    size_t got = size < (sqlite3_int64)sizeof h ? (size_t)size : sizeof h;
    int rc = f->pMethods->xRead(f, h, (int)got, 0);
    if (rc != SQLITE_OK) return cp_error_set(err, CP_EIO, "cannot read %s", path);
    size_t cmp = got < 16 ? got : 16;
    if (memcmp(h, magic, cmp) != 0)
        return cp_error_set(err, CP_EFORMAT, "%s is not a colplaid index (not an SQLite database)",
                            path);
    if (got < sizeof h)
        return cp_error_set(err, CP_ECORRUPT, "%s is truncated (%zu bytes)", path, got);
    uint32_t page = (uint32_t)h[16] << 8 | h[17];
    if (page == 1) page = 65536;
    uint32_t pages = be32(h + 28);
    bool size_valid = pages != 0 && be32(h + 24) == be32(h + 92);
    /* With a non-empty WAL the header may describe a state not yet checkpointed. */
    char wal[PATH_MAX];
    struct stat wb;
    bool wal_used = snprintf(wal, sizeof wal, "%s-wal", path) < (int)sizeof wal &&
                    stat(wal, &wb) == 0 && wb.st_size > 0;
    if (size_valid && !wal_used && (uint64_t)size < (uint64_t)page * pages)
        return cp_error_set(err, CP_ECORRUPT,
                            "%s is truncated: %lld bytes, its header says %llu", path,
                            (long long)size, (unsigned long long)page * pages);
    return CP_OK;
}

static cp_status check_path(const char *path, cp_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cp_error_set(err, CP_ENOTFOUND, "no index at %s (%s)", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return cp_error_set(err, CP_EFORMAT, "%s is not a colplaid index (not a regular file)",
                            path);
    return CP_OK;
}

static cp_status pragma_int(cp_store *s, const char *sql, int64_t *out, cp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) return CP_OK;
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
        return cp_error_set(err, CP_ECORRUPT, "%s is damaged or not an index (%s)", s->path,
                            sqlite3_errmsg(s->db));
    return cp_store_sql_error(s, rc, "reading the file header", err);
}

static cp_status check_identity(cp_store *s, cp_error *err)
{
    int64_t app = 0, version = 0;
    cp_status st = pragma_int(s, "PRAGMA application_id", &app, err);
    if (st == CP_OK) st = pragma_int(s, "PRAGMA user_version", &version, err);
    if (st != CP_OK) return st;
    if (app != CP_APPLICATION_ID)
        return cp_error_set(err, CP_EFORMAT,
                            "%s is an SQLite database but not a colplaid index", s->path);
    if (version > CP_INDEX_FORMAT_VERSION || version < 1)
        return cp_error_set(err, CP_EFORMAT,
                            "%s has index format version %lld, which this build does not know "
                            "(it reads version %d); use a colplaid that matches",
                            s->path, (long long)version, CP_INDEX_FORMAT_VERSION);
    return CP_OK;
}

/* meta "format_version" (what `index info` shows) must name a version this build reads,
 * as the header's user_version does: a file that says 0 or 999 is refused, not served. */
static cp_status check_meta_version(cp_store *s, cp_error *err)
{
    char *v = cp_store_get_meta(s, "format_version");
    char *end = NULL;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    bool number = v && *v && !*end && !errno;
    free(v);
    if (!number)
        return cp_error_set(err, CP_ECORRUPT,
                            "%s: meta \"format_version\" is missing or not a number", s->path);
    if (x < 1 || x > CP_INDEX_FORMAT_VERSION)
        return cp_error_set(err, CP_EFORMAT,
                            "%s: meta \"format_version\" is %lld, which this build does not know "
                            "(it reads versions 1 to %d)",
                            s->path, x, CP_INDEX_FORMAT_VERSION);
    return CP_OK;
}

/* The codec variant: meta "codec" (format 2); absent (format 1) means COLBERT. */
static cp_status load_codec_meta(cp_store *s, cp_error *err)
{
    s->variant = CP_CODEC_COLBERT;
    s->scale_log_min = s->scale_log_max = 0;
    char *text = cp_store_get_meta(s, "codec");
    if (!text) return CP_OK;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "variant") : NULL;
    int variant = 0;
    if (!cJSON_IsString(v) || !cp_codec_variant_parse(v->valuestring, &variant)) {
        cp_status st = cp_error_set(
            err, CP_EFORMAT,
            "%s: meta codec names a codec this build does not know (%s); use a colplaid that "
            "matches",
            s->path, cJSON_IsString(v) ? v->valuestring : "no variant");
        cJSON_Delete(j);
        return st;
    }
    s->variant = variant;
    if (variant == CP_CODEC_SCALED) {
        const cJSON *lo = cJSON_GetObjectItemCaseSensitive(j, "scale_log_min");
        const cJSON *hi = cJSON_GetObjectItemCaseSensitive(j, "scale_log_max");
        if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || !isfinite(lo->valuedouble) ||
            !isfinite(hi->valuedouble) || !(lo->valuedouble < hi->valuedouble)) {
            cJSON_Delete(j);
            return cp_error_set(err, CP_ECORRUPT,
                                "%s: meta codec has no valid scale range (scale_log_min < "
                                "scale_log_max)",
                                s->path);
        }
        s->scale_log_min = (float)lo->valuedouble;
        s->scale_log_max = (float)hi->valuedouble;
    }
    cJSON_Delete(j);
    return CP_OK;
}

static cp_status load_shape(cp_store *s, cp_error *err)
{
    int64_t dim, nbits, k;
    cp_status st;
    if ((st = check_meta_version(s, err)) != CP_OK) return st;
    if ((st = cp_store_meta_int(s, "dim", 1, 65536, &dim, err)) != CP_OK ||
        (st = cp_store_meta_int(s, "nbits", 1, CP_MAX_NBITS, &nbits, err)) != CP_OK ||
        (st = cp_store_meta_int(s, "n_centroids", 1, INT32_MAX, &k, err)) != CP_OK)
        return st;
    if (dim % 8 != 0 || (nbits & (nbits - 1)) != 0)
        return cp_error_set(err, CP_ECORRUPT, "%s: meta dim %lld / nbits %lld are inconsistent",
                            s->path, (long long)dim, (long long)nbits);
    s->dim = (int)dim;
    s->nbits = (int)nbits;
    s->n_centroids = k;
    st = load_codec_meta(s, err);
    if (st != CP_OK) return st;
    s->token_bytes = cp_residual_bytes(s->dim, s->nbits) + (s->variant == CP_CODEC_SCALED);
    return CP_OK;
}

/* The lexical side is the table "lexical" (an FTS5 index over the view lexical_content,
 * the live documents that have a text). A file without it (format 1 and 2 files built
 * before it existed, builds from embeddings) simply has none. */
static cp_status detect_lexical(cp_store *s, cp_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                                " name = 'lexical'",
                                -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    s->lexical = rc == SQLITE_ROW;
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? CP_OK
               : cp_store_sql_error(s, rc, "looking for the lexical index", err);
}

bool cp_store_has_lexical(const cp_store *store)
{
    return store->lexical;
}

cp_status cp_store_lexical_create(cp_store *store, cp_error *err)
{
    if (store->lexical) return CP_OK;
    if (!store->in_txn)
        return cp_error_set(err, CP_EINTERNAL, "%s: lexical index outside a transaction",
                            store->path);
    cp_status st =
        exec_sql(store,
                 "CREATE VIEW lexical_content AS SELECT doc_id, text FROM documents"
                 " WHERE deleted = 0 AND text IS NOT NULL;"
                 "CREATE VIRTUAL TABLE lexical USING fts5(text, content = 'lexical_content',"
                 " content_rowid = 'doc_id', tokenize = '" CP_LEXICAL_TOKENIZER "');"
                 "INSERT INTO lexical(lexical) VALUES ('rebuild');",
                 "creating the lexical index", err);
    if (st == CP_OK) st = cp_store_set_meta(store, "lexical_tokenizer", CP_LEXICAL_TOKENIZER, err);
    if (st == CP_OK) store->lexical = true;
    return st;
}

cp_status cp_store_open(const char *path, int flags, cp_store **out, cp_error *err)
{
    *out = NULL;
    cp_status st = check_path(path, err);
    if (st != CP_OK) return st;
    bool write = flags & CP_OPEN_WRITE;
    cp_store *s = store_new(path, flags);
    if (!s) return cp_error_set(err, CP_ENOMEM, "out of memory opening %s", path);
    int oflags = (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
    if (rc != SQLITE_OK) {
        st = cp_store_sql_error(s, rc, "opening", err);
        goto fail;
    }
    if ((st = check_file_header(s, err)) != CP_OK) goto fail;
    if (write && sqlite3_db_readonly(s->db, "main") == 1) {
        st = cp_error_set(err, CP_EREADONLY, "%s is read-only; cannot open it for writing", path);
        goto fail;
    }
    if ((st = configure_connection(s, err)) != CP_OK) goto fail;
    if ((st = check_identity(s, err)) != CP_OK || (st = load_shape(s, err)) != CP_OK) goto fail;
    if (write && (st = take_writer_lock(s, err)) != CP_OK) goto fail;
    if ((st = detect_lexical(s, err)) != CP_OK) goto fail;
    *out = s;
    return CP_OK;
fail:
    cp_store_close(s);
    return st;
}

/* ------------------------------------------------------------------------------------
 * Meta and transactions
 * --------------------------------------------------------------------------------- */

cp_status cp_store_set_meta(cp_store *store, const char *key, const char *value, cp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return CP_OK;
    char what[128];
    snprintf(what, sizeof what, "writing meta \"%s\"", key);
    return cp_store_sql_error(store, rc, what, err);
}

char *cp_store_get_meta(cp_store *store, const char *key)
{
    sqlite3_stmt *st = NULL;
    char *value = NULL;
    if (sqlite3_prepare_v2(store->db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            value = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return value;
}

cp_status cp_store_meta_int(cp_store *store, const char *key, int64_t min, int64_t max,
                            int64_t *out, cp_error *err)
{
    char *v = cp_store_get_meta(store, key);
    char *end = NULL;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    bool ok = v && *v && !*end && !errno && x >= min && x <= max;
    free(v);
    if (!ok)
        return cp_error_set(err, CP_ECORRUPT, "%s: meta \"%s\" is missing or invalid", store->path,
                            key);
    *out = x;
    return CP_OK;
}

cp_status cp_store_begin(cp_store *store, cp_error *err)
{
    if (store->in_txn)
        return cp_error_set(err, CP_EINTERNAL, "%s: a transaction is already open", store->path);
    cp_status st = exec_sql(store, "BEGIN IMMEDIATE", "starting a transaction", err);
    if (st == CP_OK) store->in_txn = true;
    return st;
}

cp_status cp_store_commit(cp_store *store, cp_error *err)
{
    if (!store->in_txn)
        return cp_error_set(err, CP_EINTERNAL, "%s: commit without a transaction", store->path);
    cp_status st = exec_sql(store, "COMMIT", "committing", err);
    if (st != CP_OK) {
        cp_store_rollback(store);
        return st;
    }
    store->in_txn = false;
    return CP_OK;
}

cp_status cp_store_checkpoint(cp_store *store, cp_error *err)
{
    int in_wal = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(store->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &in_wal, &copied);
    if (rc != SQLITE_OK) return cp_store_sql_error(store, rc, "writing the index file", err);
    if (copied != in_wal)
        return cp_error_set(err, CP_EBUSY, "%s: another connection kept the index's WAL busy",
                            store->path);
    return CP_OK;
}

void cp_store_rollback(cp_store *store)
{
    if (!store->in_txn) return;
    if (sqlite3_get_autocommit(store->db) == 0)
        sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
    store->in_txn = false;
}

/* ------------------------------------------------------------------------------------
 * Appending segments
 * --------------------------------------------------------------------------------- */

static cp_status bind_compressed(cp_store *s, sqlite3_stmt *st, int col, const void *data,
                                 size_t n, cp_error *err)
{
    size_t cap = ZSTD_compressBound(n);
    void *buf = malloc(cap ? cap : 1);
    if (!buf) return cp_error_set(err, CP_ENOMEM, "%s: out of memory compressing a segment", s->path);
    size_t z = ZSTD_compress(buf, cap, data, n, ZSTD_LEVEL);
    if (ZSTD_isError(z)) {
        free(buf);
        return cp_error_set(err, CP_EINTERNAL, "%s: zstd: %s", s->path, ZSTD_getErrorName(z));
    }
    if (sqlite3_bind_blob64(st, col, buf, z, free) != SQLITE_OK)
        return cp_store_sql_error(s, sqlite3_errcode(s->db), "storing a segment", err);
    return CP_OK;
}

static cp_status validate_segment(cp_store *s, const cp_segment_input *seg, cp_error *err)
{
    if (seg->n_docs == 0 || seg->n_docs > INT32_MAX)
        return cp_error_set(err, CP_EINVAL, "%s: a segment needs 1 to 2^31 documents", s->path);
    int64_t sum = 0;
    for (size_t i = 0; i < seg->n_docs; i++) {
        if (seg->doclens[i] < 0)
            return cp_error_set(err, CP_EINVAL, "%s: document %zu of a segment has %d tokens",
                                s->path, i, seg->doclens[i]);
        if (seg->docs && (!seg->docs[i].id || !seg->docs[i].id[0]))
            return cp_error_set(err, CP_EINVAL, "%s: document %zu of a segment has no id",
                                s->path, i);
        sum += seg->doclens[i];
    }
    if (sum != seg->n_tokens)
        return cp_error_set(err, CP_EINVAL,
                            "%s: segment doclens sum to %lld tokens but %lld were given", s->path,
                            (long long)sum, (long long)seg->n_tokens);
    for (int64_t t = 0; t < seg->n_tokens; t++)
        if (seg->codes[t] < 0 || seg->codes[t] >= s->n_centroids)
            return cp_error_set(err, CP_EINVAL, "%s: token %lld has centroid code %d, outside [0, %lld)",
                                s->path, (long long)t, seg->codes[t], (long long)s->n_centroids);
    return CP_OK;
}

static cp_status next_ids(cp_store *s, int64_t *doc_id, int64_t *segment_id, cp_error *err)
{
    cp_status st = cp_store_meta_int(s, "next_doc_id", 0, INT32_MAX, doc_id, err);
    if (st != CP_OK) return st;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT COALESCE(MAX(segment_id) + 1, 0) FROM segments",
                                -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        *segment_id = sqlite3_column_int64(q, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? CP_OK : cp_store_sql_error(s, rc, "numbering a segment", err);
}

static cp_status insert_segment_row(cp_store *s, const cp_segment_input *seg, int64_t segment_id,
                                    const int64_t *doc_ids, cp_error *err)
{
    size_t rbytes = (size_t)seg->n_tokens * (size_t)s->token_bytes;
    uint64_t h = cp_checksum64(CP_CHECKSUM_SEED, doc_ids, seg->n_docs * sizeof(int64_t));
    h = cp_checksum64(h, seg->doclens, seg->n_docs * sizeof(int32_t));
    h = cp_checksum64(h, seg->codes, (size_t)seg->n_tokens * sizeof(int32_t));
    h = cp_checksum64(h, seg->residuals, rbytes);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO segments(segment_id, n_docs, n_tokens, doc_ids,"
                                " doclens, codes, residuals, checksum) VALUES (?,?,?,?,?,?,?,?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(s, rc, "storing a segment", err);
    sqlite3_bind_int64(st, 1, segment_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seg->n_docs);
    sqlite3_bind_int64(st, 3, seg->n_tokens);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)h);
    cp_status cs;
    if ((cs = bind_compressed(s, st, 4, doc_ids, seg->n_docs * sizeof(int64_t), err)) != CP_OK ||
        (cs = bind_compressed(s, st, 5, seg->doclens, seg->n_docs * sizeof(int32_t), err)) != CP_OK ||
        (cs = bind_compressed(s, st, 6, seg->codes, (size_t)seg->n_tokens * sizeof(int32_t), err)) != CP_OK ||
        (cs = bind_compressed(s, st, 7, seg->residuals, rbytes, err)) != CP_OK) {
        sqlite3_finalize(st);
        return cs;
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CP_OK : cp_store_sql_error(s, rc, "storing a segment", err);
}

/* The texts of a new segment's documents into the lexical index, in the same transaction. */
static cp_status lexical_insert(cp_store *s, const cp_segment_input *seg, int64_t first,
                                cp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        sqlite3_prepare_v2(s->db, "INSERT INTO lexical(rowid, text) VALUES (?, ?)", -1, &st, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(s, rc, "indexing texts", err);
    for (size_t i = 0; i < seg->n_docs && rc == SQLITE_OK; i++) {
        if (!seg->docs[i].text) continue;
        sqlite3_bind_int64(st, 1, first + (int64_t)i);
        sqlite3_bind_text(st, 2, seg->docs[i].text, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? CP_OK : cp_store_sql_error(s, rc, "indexing texts", err);
}

static cp_status insert_documents(cp_store *s, const cp_segment_input *seg, int64_t segment_id,
                                  int64_t first, cp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO documents(doc_id, external_id, text, metadata,"
                                " n_tokens, segment_id) VALUES (?,?,?,?,?,?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(s, rc, "storing documents", err);
    cp_status result = CP_OK;
    for (size_t i = 0; i < seg->n_docs && result == CP_OK; i++) {
        const cp_document *d = &seg->docs[i];
        sqlite3_bind_int64(st, 1, first + (int64_t)i);
        sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, d->text, -1, SQLITE_STATIC); /* NULL binds NULL */
        sqlite3_bind_text(st, 4, d->metadata_json, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, seg->doclens[i]);
        sqlite3_bind_int64(st, 6, segment_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT_UNIQUE)
            result = cp_error_set(err, CP_EEXISTS, "%s: document id \"%s\" exists already",
                                  s->path, d->id);
        else if (rc != SQLITE_DONE)
            result = cp_store_sql_error(s, rc, "storing documents", err);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (result == CP_OK && s->lexical) result = lexical_insert(s, seg, first, err);
    return result;
}

/* ---- windows of windowed documents (doc_windows; index/windows.c has the rest) ---- */

#define WINDOWS_TABLE_SQL                                                                          \
    "CREATE TABLE IF NOT EXISTS doc_windows(doc_id INTEGER PRIMARY KEY, windows BLOB NOT NULL)"

static bool has_windows_table(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    bool yes = false;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                           "'doc_windows'",
                           -1, &q, NULL) == SQLITE_OK)
        yes = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return yes;
}

cp_status cp_windows_validate(const cp_window *w, int32_t n, int32_t n_tokens, const char *what,
                              cp_error *err)
{
    int32_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        if (w[i].tok_start != at || w[i].tok_end < w[i].tok_start || w[i].char_start < 0 ||
            w[i].char_end < w[i].char_start)
            return cp_error_set(err, CP_EINVAL,
                                "%s: window %d (tokens %d..%d, characters %d..%d) does not follow "
                                "the previous one",
                                what, (int)i, (int)w[i].tok_start, (int)w[i].tok_end,
                                (int)w[i].char_start, (int)w[i].char_end);
        at = w[i].tok_end;
    }
    if (n && at != n_tokens)
        return cp_error_set(err, CP_EINVAL, "%s: windows cover %d token rows, the document has %d",
                            what, (int)at, (int)n_tokens);
    return CP_OK;
}

static cp_status insert_windows(cp_store *store, const cp_document *docs, size_t n, int64_t first,
                                cp_error *err)
{
    size_t with = 0;
    for (size_t i = 0; i < n; i++)
        with += docs[i].n_windows > 0;
    if (!with) return CP_OK;
    sqlite3 *db = store->db;
    int rc = sqlite3_exec(db, WINDOWS_TABLE_SQL, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(store, rc, "creating the windows table", err);
    sqlite3_stmt *q = NULL;
    rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO doc_windows(doc_id, windows) VALUES (?, ?)",
                            -1, &q, NULL);
    if (rc != SQLITE_OK) return cp_store_sql_error(store, rc, "storing windows", err);
    cp_status st = CP_OK;
    for (size_t i = 0; st == CP_OK && i < n; i++) {
        const cp_document *d = &docs[i];
        if (d->n_windows <= 0) continue;
        st = cp_windows_validate(d->windows, d->n_windows, d->n_tokens, d->id, err);
        if (st != CP_OK) break;
        sqlite3_bind_int64(q, 1, first + (int64_t)i);
        sqlite3_bind_blob64(q, 2, d->windows, (sqlite3_uint64)d->n_windows * sizeof(cp_window),
                            SQLITE_STATIC);
        rc = sqlite3_step(q);
        if (rc != SQLITE_DONE) st = cp_store_sql_error(store, rc, "storing windows", err);
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    return st;
}

static cp_status drop_window_tombstones(cp_store *store, int64_t segment_id, cp_error *err)
{
    sqlite3 *db = store->db;
    if (!has_windows_table(db)) return CP_OK;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "DELETE FROM doc_windows WHERE doc_id IN (SELECT doc_id FROM "
                                "documents WHERE segment_id = ? AND deleted != 0)",
                                -1, &q, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, segment_id);
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_OK ? CP_OK : cp_store_sql_error(store, rc, "removing windows", err);
}

cp_status cp_store_append_segment(cp_store *store, const cp_segment_input *seg,
                                  int64_t *first_doc_id, cp_error *err)
{
    if (!store->in_txn)
        return cp_error_set(err, CP_EINTERNAL, "%s: append outside a transaction", store->path);
    cp_status st = validate_segment(store, seg, err);
    int64_t first = 0, segment_id = 0;
    if (st == CP_OK) st = next_ids(store, &first, &segment_id, err);
    if (st != CP_OK) return st;
    if (first + (int64_t)seg->n_docs > INT32_MAX)
        return cp_error_set(err, CP_EUNSUPPORTED, "%s: an index holds fewer than 2^31 documents",
                            store->path);
    int64_t *ids = malloc(seg->n_docs * sizeof *ids);
    if (!ids) return cp_error_set(err, CP_ENOMEM, "%s: out of memory", store->path);
    for (size_t i = 0; i < seg->n_docs; i++) ids[i] = first + (int64_t)i;
    st = insert_documents(store, seg, segment_id, first, err);
    if (st == CP_OK) st = insert_windows(store, seg->docs, seg->n_docs, first, err);
    if (st == CP_OK) st = insert_segment_row(store, seg, segment_id, ids, err);
    free(ids);
    if (st != CP_OK) return st;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)(first + (int64_t)seg->n_docs));
    st = cp_store_set_meta(store, "next_doc_id", buf, err);
    if (st == CP_OK && first_doc_id) *first_doc_id = first;
    return st;
}

/* ------------------------------------------------------------------------------------
 * Reading the codec
 * --------------------------------------------------------------------------------- */

static cp_status copy_float_blob(cp_store *s, sqlite3_stmt *q, int col, size_t n, float *dst,
                                 const char *name, cp_error *err)
{
    size_t bytes = (size_t)sqlite3_column_bytes(q, col);
    const void *p = sqlite3_column_blob(q, col);
    if (bytes != n * sizeof(float) || (n && !p))
        return cp_error_set(err, CP_ECORRUPT, "%s: codec %s has %zu bytes, expected %zu", s->path,
                            name, bytes, n * sizeof(float));
    if (n) memcpy(dst, p, n * sizeof(float));
    return CP_OK;
}

/* Every codec value a search multiplies with must be a finite number: a NaN centroid or
 * bucket weight turns every score into NaN (or drops every candidate) silently. */
static cp_status check_codec_values(cp_store *store, const cp_codec *c, cp_error *err)
{
    size_t kd = (size_t)c->n_centroids * (size_t)c->dim;
    for (size_t i = 0; i < kd; i++)
        if (!isfinite(c->centroids[i]))
            return cp_error_set(err, CP_ECORRUPT,
                                "%s: codec centroid %lld holds a value that is not a finite "
                                "number (%g)",
                                store->path, (long long)(i / (size_t)c->dim),
                                (double)c->centroids[i]);
    int nb = 1 << c->nbits;
    for (int i = 0; i < nb - 1; i++)
        if (!isfinite(c->bucket_cutoffs[i]))
            return cp_error_set(err, CP_ECORRUPT,
                                "%s: codec bucket cutoff %d is not a finite number (%g)",
                                store->path, i, (double)c->bucket_cutoffs[i]);
    for (int i = 0; i < nb; i++)
        if (!isfinite(c->bucket_weights[i]))
            return cp_error_set(err, CP_ECORRUPT,
                                "%s: codec bucket weight %d is not a finite number (%g)",
                                store->path, i, (double)c->bucket_weights[i]);
    if (!isfinite(c->avg_residual))
        return cp_error_set(err, CP_ECORRUPT, "%s: codec avg_residual is not a finite number",
                            store->path);
    return CP_OK;
}

cp_status cp_store_load_codec(cp_store *store, cp_codec *out, cp_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(store->db,
                                "SELECT centroids, bucket_cutoffs, bucket_weights, avg_residual"
                                " FROM codec WHERE id = 1",
                                -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        cp_status st = rc == SQLITE_DONE
                           ? cp_error_set(err, CP_ECORRUPT, "%s: the codec row is missing",
                                          store->path)
                           : cp_store_sql_error(store, rc, "reading the codec", err);
        sqlite3_finalize(q);
        return st;
    }
    size_t kd = (size_t)store->n_centroids * (size_t)store->dim;
    int nb = 1 << store->nbits;
    out->dim = store->dim;
    out->nbits = store->nbits;
    out->n_centroids = store->n_centroids;
    out->variant = store->variant;
    out->scale_log_min = store->scale_log_min;
    out->scale_log_max = store->scale_log_max;
    cp_codec_init_scales(out);
    out->avg_residual = (float)sqlite3_column_double(q, 3);
    out->centroids = malloc(kd * sizeof(float));
    cp_status st = out->centroids ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
    if (st == CP_OK) st = copy_float_blob(store, q, 0, kd, out->centroids, "centroids", err);
    if (st == CP_OK)
        st = copy_float_blob(store, q, 1, (size_t)nb - 1, out->bucket_cutoffs, "cutoffs", err);
    if (st == CP_OK)
        st = copy_float_blob(store, q, 2, (size_t)nb, out->bucket_weights, "weights", err);
    sqlite3_finalize(q);
    if (st == CP_OK) st = check_codec_values(store, out, err);
    if (st != CP_OK) {
        free(out->centroids);
        out->centroids = NULL;
    }
    return st;
}

/* ------------------------------------------------------------------------------------
 * Segment iteration
 * --------------------------------------------------------------------------------- */

cp_status cp_store_segments_begin(cp_store *store, cp_segment_iter **out, cp_error *err)
{
    *out = NULL;
    cp_segment_iter *it = calloc(1, sizeof *it);
    if (!it) return cp_error_set(err, CP_ENOMEM, "out of memory");
    it->store = store;
    it->dctx = ZSTD_createDCtx();
    if (!it->dctx) {
        free(it);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    int rc = sqlite3_prepare_v2(store->db,
                                "SELECT segment_id, n_docs, n_tokens, doc_ids, doclens, codes,"
                                " residuals, checksum FROM segments ORDER BY segment_id",
                                -1, &it->stmt, NULL);
    if (rc != SQLITE_OK) {
        cp_status st = cp_store_sql_error(store, rc, "reading segments", err);
        cp_store_segments_end(it);
        return st;
    }
    *out = it;
    return CP_OK;
}

static void segment_data_reset(cp_segment_data *d)
{
    memset(d, 0, sizeof *d); /* the arrays belong to the iterator's buffers */
}

void cp_store_segments_end(cp_segment_iter *it)
{
    if (!it) return;
    sqlite3_finalize(it->stmt);
    ZSTD_freeDCtx(it->dctx);
    for (int i = 0; i < 4; i++) free(it->buf[i]);
    free(it);
}

/* Decompress column col (3..6) into the iterator's buffer for it; exactly want bytes. */
static cp_status inflate_column(cp_segment_iter *it, int col, size_t want, void **dst,
                                const char *name, cp_error *err)
{
    const cp_store *s = it->store;
    int64_t seg_id = it->cur.segment_id;
    const void *src = sqlite3_column_blob(it->stmt, col);
    size_t n = (size_t)sqlite3_column_bytes(it->stmt, col);
    unsigned long long size = src ? ZSTD_getFrameContentSize(src, n) : ZSTD_CONTENTSIZE_ERROR;
    if (size != want)
        return cp_error_set(err, CP_ECORRUPT,
                            "%s: segment %lld: %s blob is damaged (expected %zu bytes)", s->path,
                            (long long)seg_id, name, want);
    int b = col - 3;
    if (it->cap[b] < want || !it->buf[b]) {
        void *nb = realloc(it->buf[b], want ? want : 1);
        if (!nb) return cp_error_set(err, CP_ENOMEM, "out of memory reading segment %lld",
                                     (long long)seg_id);
        it->buf[b] = nb;
        it->cap[b] = want ? want : 1;
    }
    *dst = it->buf[b];
    size_t got = ZSTD_decompressDCtx(it->dctx, *dst, want, src, n);
    if (ZSTD_isError(got) || got != want)
        return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld: %s blob is damaged (%s)",
                            s->path, (long long)seg_id, name,
                            ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
    return CP_OK;
}

static cp_status decode_segment(cp_segment_iter *it, cp_error *err)
{
    cp_store *s = it->store;
    cp_segment_data *d = &it->cur;
    d->segment_id = sqlite3_column_int64(it->stmt, 0);
    d->n_docs = sqlite3_column_int64(it->stmt, 1);
    d->n_tokens = sqlite3_column_int64(it->stmt, 2);
    int rb = s->token_bytes;
    if (d->n_docs < 0 || d->n_docs > INT32_MAX || d->n_tokens < 0 ||
        d->n_tokens > (int64_t)(SIZE_MAX / 2 / (size_t)(rb + 4)))
        return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld has impossible sizes", s->path,
                            (long long)d->segment_id);
    size_t nd = (size_t)d->n_docs, nt = (size_t)d->n_tokens;
    cp_status st;
    if ((st = inflate_column(it, 3, nd * 8, (void **)&d->doc_ids, "doc_ids", err)) != CP_OK ||
        (st = inflate_column(it, 4, nd * 4, (void **)&d->doclens, "doclens", err)) != CP_OK ||
        (st = inflate_column(it, 5, nt * 4, (void **)&d->codes, "codes", err)) != CP_OK ||
        (st = inflate_column(it, 6, nt * (size_t)rb, (void **)&d->residuals, "residuals", err)) != CP_OK)
        return st;
    uint64_t h = cp_checksum64(CP_CHECKSUM_SEED, d->doc_ids, nd * 8);
    h = cp_checksum64(h, d->doclens, nd * 4);
    h = cp_checksum64(h, d->codes, nt * 4);
    h = cp_checksum64(h, d->residuals, nt * (size_t)rb);
    if ((int64_t)h != sqlite3_column_int64(it->stmt, 7))
        return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld fails its checksum", s->path,
                            (long long)d->segment_id);
    int64_t sum = 0;
    for (size_t i = 0; i < nd; i++) sum += d->doclens[i] < 0 ? INT32_MIN : d->doclens[i];
    if (sum != d->n_tokens)
        return cp_error_set(err, CP_ECORRUPT, "%s: segment %lld: doclens sum to %lld, not %lld",
                            s->path, (long long)d->segment_id, (long long)sum,
                            (long long)d->n_tokens);
    return CP_OK;
}

cp_status cp_store_segments_next(cp_segment_iter *it, cp_segment_data *seg, bool *has,
                                 cp_error *err)
{
    segment_data_reset(&it->cur);
    *has = false;
    int rc = sqlite3_step(it->stmt);
    if (rc == SQLITE_DONE) return CP_OK;
    if (rc != SQLITE_ROW) return cp_store_sql_error(it->store, rc, "reading segments", err);
    *has = true;
    cp_status st = decode_segment(it, err);
    if (st != CP_OK) {
        int64_t id = it->cur.segment_id;
        segment_data_reset(&it->cur);
        memset(seg, 0, sizeof *seg);
        seg->segment_id = id; /* so the caller can name the damaged segment */
        return st;
    }
    *seg = it->cur;
    return CP_OK;
}

/* ------------------------------------------------------------------------------------
 * Live writes: tombstones and segment rewrites (index/live.c)
 * --------------------------------------------------------------------------------- */

/* Run a one-parameter UPDATE ... RETURNING doc_id; *doc_id = -1 when no row changed. */
static cp_status tombstone_one(cp_store *s, const char *sql, const char *text, int64_t id,
                               int64_t *doc_id, cp_error *err)
{
    *doc_id = -1;
    if (!s->in_txn)
        return cp_error_set(err, CP_EINTERNAL, "%s: delete outside a transaction", s->path);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        if (text) sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        else sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *doc_id = sqlite3_column_int64(st, 0);
            rc = sqlite3_step(st);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return cp_store_sql_error(s, rc, "deleting a document", err);
    if (!s->lexical || *doc_id < 0) return CP_OK;
    /* Out of the lexical index in the same transaction. An external-content FTS5 table
     * forgets a row given the text it indexed, which the tombstoned row still holds. */
    rc = sqlite3_prepare_v2(s->db,
                            "INSERT INTO lexical(lexical, rowid, text) SELECT 'delete', doc_id,"
                            " text FROM documents WHERE doc_id = ? AND text IS NOT NULL",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, *doc_id);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CP_OK : cp_store_sql_error(s, rc, "deleting a document", err);
}

cp_status cp_store_tombstone_external(cp_store *store, const char *external_id, int64_t *doc_id,
                                      cp_error *err)
{
    return tombstone_one(store,
                         "UPDATE documents SET deleted = 1 WHERE external_id = ? AND deleted = 0"
                         " RETURNING doc_id",
                         external_id, 0, doc_id, err);
}

cp_status cp_store_tombstone_doc(cp_store *store, int64_t id, int64_t *doc_id, cp_error *err)
{
    return tombstone_one(store,
                         "UPDATE documents SET deleted = 1 WHERE doc_id = ? AND deleted = 0"
                         " RETURNING doc_id",
                         NULL, id, doc_id, err);
}

cp_status cp_store_segment_get(cp_store *store, int64_t segment_id, cp_segment_iter **out,
                               cp_error *err)
{
    cp_status st = cp_store_segments_begin(store, out, err);
    if (st != CP_OK) return st;
    cp_segment_iter *it = *out;
    sqlite3_finalize(it->stmt);
    it->stmt = NULL;
    int rc = sqlite3_prepare_v2(store->db,
                                "SELECT segment_id, n_docs, n_tokens, doc_ids, doclens, codes,"
                                " residuals, checksum FROM segments WHERE segment_id = ?",
                                -1, &it->stmt, NULL);
    if (rc != SQLITE_OK) {
        st = cp_store_sql_error(store, rc, "reading a segment", err);
        cp_store_segments_end(it);
        *out = NULL;
        return st;
    }
    sqlite3_bind_int64(it->stmt, 1, segment_id);
    return CP_OK;
}

static cp_status exec_int(cp_store *s, const char *sql, int64_t a, int64_t b, int *changes,
                          const char *what, cp_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, a);
        if (sqlite3_bind_parameter_count(st) > 1) sqlite3_bind_int64(st, 2, b);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (changes) *changes = sqlite3_changes(s->db);
    return rc == SQLITE_DONE ? CP_OK : cp_store_sql_error(s, rc, what, err);
}

cp_status cp_store_rewrite_segments(cp_store *store, const int64_t *old_ids, size_t n_old,
                                    const cp_segment_input *seg, const int64_t *doc_ids,
                                    int64_t *tombstones_removed, cp_error *err)
{
    if (!store->in_txn)
        return cp_error_set(err, CP_EINTERNAL, "%s: rewrite outside a transaction", store->path);
    cp_status st = CP_OK;
    *tombstones_removed = 0;
    if (seg->n_docs > 0) {
        int64_t next_doc = 0, segment_id = 0;
        st = validate_segment(store, seg, err);
        if (st == CP_OK) st = next_ids(store, &next_doc, &segment_id, err);
        if (st == CP_OK) st = insert_segment_row(store, seg, segment_id, doc_ids, err);
        for (size_t i = 0; st == CP_OK && i < seg->n_docs; i++)
            st = exec_int(store, "UPDATE documents SET segment_id = ?2 WHERE doc_id = ?1",
                          doc_ids[i], segment_id, NULL, "moving a document", err);
    }
    for (size_t i = 0; st == CP_OK && i < n_old; i++) {
        int n = 0;
        st = drop_window_tombstones(store, old_ids[i], err);
        if (st == CP_OK)
            st = exec_int(store, "DELETE FROM documents WHERE segment_id = ? AND deleted != 0",
                          old_ids[i], 0, &n, "removing tombstones", err);
        *tombstones_removed += n;
        if (st == CP_OK)
            st = exec_int(store, "DELETE FROM segments WHERE segment_id = ?", old_ids[i], 0,
                          NULL, "removing a segment", err);
    }
    return st;
}

bool cp_store_has_windows(cp_store *store)
{
    return has_windows_table(store->db);
}
