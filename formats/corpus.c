/*
 * Text corpora (colplaid/corpus.h): BEIR folders, JSONL and TSV, streamed line by line.
 *
 * Why it looks like this: corpora can be tens of gigabytes, so records are read one line
 * at a time with getline() (no line-length limit, memory bounded by the longest line) and
 * every error names the file and the 1-based line so the user can go and fix it.
 *
 * Formats
 * - JSONL: one object per line with "_id" or "id" (a string, or an integer number),
 *   "text" (string, required), "title" (string, optional; "" means none), "metadata"
 *   (object, optional). Blank lines are skipped.
 * - TSV: id<TAB>text[<TAB>title]. A first line "id<TAB>text..." (or "_id", "pid",
 *   "docid") is taken as a header and skipped.
 * - BEIR folder: PATH/corpus.jsonl.
 *
 * Invariant: the strings of the last record belong to the cp_corpus and stay valid until
 * the next cp_corpus_next / rewind / close.
 */
#include "colplaid/corpus.h"

#include <cjson/cJSON.h>

#include "cp_json.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum corpus_kind { KIND_JSONL, KIND_TSV } corpus_kind;

struct cp_corpus {
    char *path;
    FILE *f;
    corpus_kind kind;
    int64_t line;
    char *buf;
    size_t buf_cap;
    /* Owned strings of the current record. */
    char *id, *title, *text, *metadata;
};

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static void clear_record(cp_corpus *c)
{
    free(c->id);
    free(c->title);
    free(c->text);
    free(c->metadata);
    c->id = c->title = c->text = c->metadata = NULL;
}

cp_status cp_corpus_open(const char *path, cp_corpus **out, cp_error *err)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO, "cannot open %s: %s",
                            path, strerror(errno));
    cp_corpus *c = calloc(1, sizeof *c);
    if (!c) return cp_error_set(err, CP_ENOMEM, "out of memory");
    size_t n = strlen(path) + 16;
    c->path = malloc(n);
    if (!c->path) {
        free(c);
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(c->path, n, "%s/corpus.jsonl", path);
        c->kind = KIND_JSONL;
    } else if (has_suffix(path, ".jsonl") || has_suffix(path, ".json")) {
        snprintf(c->path, n, "%s", path);
        c->kind = KIND_JSONL;
    } else if (has_suffix(path, ".tsv")) {
        snprintf(c->path, n, "%s", path);
        c->kind = KIND_TSV;
    } else {
        free(c->path);
        free(c);
        return cp_error_set(err, CP_EINVAL,
                            "%s: unknown corpus format (expected a BEIR folder with corpus.jsonl, "
                            "a .jsonl file or a .tsv file)",
                            path);
    }
    c->f = fopen(c->path, "rb");
    if (!c->f) {
        cp_status st = cp_error_set(err, errno == ENOENT ? CP_ENOTFOUND : CP_EIO,
                                    "cannot open %s: %s", c->path, strerror(errno));
        free(c->path);
        free(c);
        return st;
    }
    *out = c;
    return CP_OK;
}

void cp_corpus_close(cp_corpus *c)
{
    if (!c) return;
    clear_record(c);
    if (c->f) fclose(c->f);
    free(c->buf);
    free(c->path);
    free(c);
}

const char *cp_corpus_path(const cp_corpus *c)
{
    return c->path;
}

cp_status cp_corpus_rewind(cp_corpus *c, cp_error *err)
{
    clear_record(c);
    if (fseek(c->f, 0, SEEK_SET) != 0)
        return cp_error_set(err, CP_EIO, "cannot rewind %s: %s", c->path, strerror(errno));
    c->line = 0;
    return CP_OK;
}

/* Next line without its newline (and a trailing \r); *has = false at the end. */
static cp_status read_line(cp_corpus *c, size_t *len, bool *has, cp_error *err)
{
    errno = 0;
    ssize_t n = getline(&c->buf, &c->buf_cap, c->f);
    if (n < 0) {
        if (ferror(c->f))
            return cp_error_set(err, CP_EIO, "%s line %lld: read error: %s", c->path,
                                (long long)c->line + 1, strerror(errno ? errno : EIO));
        *has = false;
        return CP_OK;
    }
    c->line++;
    size_t l = (size_t)n;
    if (l && c->buf[l - 1] == '\n') c->buf[--l] = '\0';
    if (l && c->buf[l - 1] == '\r') c->buf[--l] = '\0';
    if (strlen(c->buf) != l)
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: contains a NUL byte", c->path,
                            (long long)c->line);
    *len = l;
    *has = true;
    return CP_OK;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return false;
    return true;
}

/* ---- JSONL ---- */

static cp_status json_id(cp_corpus *c, const cJSON *o, cp_error *err)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "_id");
    if (!id) id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!id)
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: field \"_id\" or \"id\" is missing",
                            c->path, (long long)c->line);
    char num[32];
    const char *s = NULL;
    if (cJSON_IsString(id)) {
        s = id->valuestring;
    } else if (cJSON_IsNumber(id) && id->valuedouble == floor(id->valuedouble) &&
               fabs(id->valuedouble) < 9e15) {
        snprintf(num, sizeof num, "%.0f", id->valuedouble);
        s = num;
    } else {
        return cp_error_set(err, CP_EFORMAT,
                            "%s line %lld: field \"id\" must be a string or an integer", c->path,
                            (long long)c->line);
    }
    if (!s[0])
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: the document id is empty", c->path,
                            (long long)c->line);
    c->id = strdup(s);
    return c->id ? CP_OK : cp_error_set(err, CP_ENOMEM, "out of memory");
}

static cp_status json_fields(cp_corpus *c, const cJSON *o, cp_error *err)
{
    cp_status st = json_id(c, o, err);
    if (st != CP_OK) return st;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (!cJSON_IsString(text))
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: field \"text\" is %s", c->path,
                            (long long)c->line, text ? "not a string" : "missing");
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(o, "title");
    if (title && !cJSON_IsString(title) && !cJSON_IsNull(title))
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: field \"title\" is not a string",
                            c->path, (long long)c->line);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    if (meta && !cJSON_IsObject(meta) && !cJSON_IsNull(meta))
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: field \"metadata\" is not an object",
                            c->path, (long long)c->line);
    c->text = strdup(text->valuestring);
    if (cJSON_IsString(title) && title->valuestring[0]) c->title = strdup(title->valuestring);
    if (cJSON_IsObject(meta)) c->metadata = cJSON_PrintUnformatted(meta);
    if (!c->text || (cJSON_IsString(title) && title->valuestring[0] && !c->title) ||
        (cJSON_IsObject(meta) && !c->metadata))
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    return CP_OK;
}

/* What the server refuses at its door, refused here too (util/cp_json.h): a line with two
 * objects or trailing data (cJSON read the first and ignored the rest), "\u0000" in a string
 * (cJSON cut the id or text short, so "victim\u0000x" replaced "victim"), invalid UTF-8 and
 * repeated keys. */
static cp_status check_jsonl(cp_corpus *c, size_t len, cp_error *err)
{
    cp_json_info info;
    cp_json_status js = cp_json_check(c->buf, len, 1000, SIZE_MAX, &info);
    const char *what = NULL;
    switch (js) {
    case CP_JSON_OK:
        return CP_OK;
    case CP_JSON_TRAILING:
        what = "data after the JSON object (one object per line)";
        break;
    case CP_JSON_NUL:
        what = "a string contains U+0000 (NUL)";
        break;
    case CP_JSON_UTF8:
        what = "invalid UTF-8";
        break;
    case CP_JSON_DUP_KEY:
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: the key \"%s\" occurs twice", c->path,
                            (long long)c->line, info.dup_key);
    case CP_JSON_NOMEM:
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    default:
        what = "invalid JSON";
        break;
    }
    return cp_error_set(err, CP_EFORMAT, "%s line %lld: %s near byte %lld", c->path,
                        (long long)c->line, what, (long long)info.offset + 1);
}

static cp_status parse_jsonl(cp_corpus *c, size_t len, cp_error *err)
{
    cp_status cst = check_jsonl(c, len, err);
    if (cst != CP_OK) return cst;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(c->buf, len, &end, false);
    if (!o)
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: invalid JSON near byte %lld", c->path,
                            (long long)c->line,
                            (long long)(end && end >= c->buf ? end - c->buf + 1 : 1));
    cp_status st;
    if (!cJSON_IsObject(o))
        st = cp_error_set(err, CP_EFORMAT, "%s line %lld: expected a JSON object", c->path,
                          (long long)c->line);
    else
        st = json_fields(c, o, err);
    cJSON_Delete(o);
    return st;
}

/* ---- TSV ---- */

static bool tsv_header(const char *line)
{
    static const char *const names[] = {"id\t", "_id\t", "pid\t", "docid\t", "doc_id\t"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strncmp(line, names[i], strlen(names[i]))) return true;
    return false;
}

static cp_status parse_tsv(cp_corpus *c, size_t len, cp_error *err)
{
    size_t ok = cp_utf8_valid_prefix(c->buf, len);
    if (ok < len)
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: invalid UTF-8 near byte %lld", c->path,
                            (long long)c->line, (long long)ok + 1);
    char *tab = strchr(c->buf, '\t');
    if (!tab)
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: expected id<TAB>text", c->path,
                            (long long)c->line);
    *tab = '\0';
    if (!c->buf[0])
        return cp_error_set(err, CP_EFORMAT, "%s line %lld: the document id is empty", c->path,
                            (long long)c->line);
    char *text = tab + 1, *title = strchr(text, '\t');
    if (title) {
        *title++ = '\0';
        if (strchr(title, '\t'))
            return cp_error_set(err, CP_EFORMAT,
                                "%s line %lld: too many columns (expected id<TAB>text[<TAB>title])",
                                c->path, (long long)c->line);
    }
    c->id = strdup(c->buf);
    c->text = strdup(text);
    if (title && title[0]) c->title = strdup(title);
    if (!c->id || !c->text || (title && title[0] && !c->title))
        return cp_error_set(err, CP_ENOMEM, "out of memory");
    return CP_OK;
}

cp_status cp_corpus_next(cp_corpus *c, cp_corpus_record *rec, bool *has, cp_error *err)
{
    clear_record(c);
    memset(rec, 0, sizeof *rec);
    for (;;) {
        size_t len = 0;
        cp_status st = read_line(c, &len, has, err);
        if (st != CP_OK || !*has) return st;
        if (blank(c->buf)) continue;
        if (c->kind == KIND_TSV && c->line == 1 && tsv_header(c->buf)) continue;
        st = c->kind == KIND_JSONL ? parse_jsonl(c, len, err) : parse_tsv(c, len, err);
        const char *bad_id = st == CP_OK ? cp_document_id_problem(c->id) : NULL;
        if (bad_id)
            st = cp_error_set(err, CP_EFORMAT, "%s line %lld: the document id %s", c->path,
                              (long long)c->line, bad_id);
        else if (st == CP_OK && cp_document_text_blank(c->text) && cp_document_text_blank(c->title))
            st = cp_error_set(err, CP_EFORMAT, "%s line %lld: the document has no text", c->path,
                              (long long)c->line);
        if (st != CP_OK) {
            clear_record(c);
            return st;
        }
        break;
    }
    rec->id = c->id;
    rec->title = c->title;
    rec->text = c->text;
    rec->metadata_json = c->metadata;
    rec->line = c->line;
    return CP_OK;
}
