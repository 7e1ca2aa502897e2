/*
 * `colplaid index import|info|check|export` (CLI.md): thin wrappers over the index library
 * (cp_index_import_colbert, cp_index_stats_get, cp_index_check, cp_index_export) that parse
 * options strictly and report failures as one sentence on stderr.
 *
 * Exit status: 0 success, 1 runtime failure (including a damaged index for check), 2 bad
 * usage.
 */
#include "cmd_index_admin.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"

/* An option table: string options fill *value, flags set *flag. */
typedef struct admin_opt {
    const char *name;
    const char **value;
    bool *flag;
} admin_opt;

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
    return false;
}

static int parse_opts(const char *cmd, int argc, char **argv, const admin_opt *opts, size_t n)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const admin_opt *o = NULL;
        size_t len = 0;
        for (size_t k = 0; k < n && !o; k++) {
            len = strlen(opts[k].name);
            if (!strncmp(arg, opts[k].name, len) && (arg[len] == 0 || arg[len] == '='))
                o = &opts[k];
        }
        if (!o) return cp_cli_usage_error(cmd, "unknown option '%s'", arg);
        if (o->flag) {
            if (arg[len] == '=') return cp_cli_usage_error(cmd, "%s takes no value", o->name);
            *o->flag = true;
            continue;
        }
        const char *v = arg[len] == '=' ? arg + len + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v || !*v) return cp_cli_usage_error(cmd, "%s needs a value", o->name);
        *o->value = v;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------
 * import
 * --------------------------------------------------------------------------------- */

static const char import_usage[] =
    "usage: colplaid index import --index IDX.db --colbert DIR [--force] [--quiet]\n"
    "\n"
    "Import a Stanford ColBERT / RAGatouille PLAID index folder (metadata.json, centroids.pt,\n"
    "buckets.pt, N.codes.pt, N.residuals.pt, doclens.N.json; collection.json and\n"
    "pid_docid_map.json when present). Centroids and buckets are kept as they are (no\n"
    "retraining), so search scores match the original index. nbits 1, 2, 4 and 8.\n"
    "\n"
    "  --index IDX.db   the index file to create (written atomically)\n"
    "  --colbert DIR    the ColBERT index folder\n"
    "  --force          replace an existing file at --index\n"
    "  --quiet          no progress output\n"
    "\n"
    "Document ids: the pid_docid_map.json ids when they are unique per passage, otherwise\n"
    "the passage number (pid); metadata holds {\"colbert_pid\", \"document_id\"}.\n";

int cp_cmd_index_import(int argc, char **argv)
{
    const char *cmd = "index import";
    if (wants_help(argc, argv)) return fputs(import_usage, stdout), CP_EXIT_OK;
    const char *index = NULL, *dir = NULL;
    bool force = false, quiet = false;
    admin_opt opts[] = {{"--index", &index, NULL}, {"--colbert", &dir, NULL},
                        {"--force", NULL, &force}, {"--quiet", NULL, &quiet}};
    int rc = parse_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc;
    if (!index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    if (!dir) return cp_cli_usage_error(cmd, "--colbert DIR is required");
    cp_error err = {0};
    if (cp_index_import_colbert(dir, index, force, quiet ? NULL : stderr, &err) != CP_OK)
        return cp_cli_report(cmd, &err);
    if (!quiet) fprintf(stderr, "wrote %s\n", index);
    return CP_EXIT_OK;
}

/* ------------------------------------------------------------------------------------
 * info
 * --------------------------------------------------------------------------------- */

static const char info_usage[] =
    "usage: colplaid index info --index IDX.db [--format text|json]\n"
    "\n"
    "Show an index's parameters (format version, dim, nbits, centroids), its size\n"
    "(documents, deleted, tokens, segments, bytes on disk and in memory) and the stored\n"
    "encoder fingerprint and build parameters.\n";

static void human_bytes(int64_t b, char *out, size_t n)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void add_json_meta(cJSON *o, const char *key, char *value)
{
    if (!value) return;
    cJSON *parsed = cJSON_Parse(value);
    if (parsed) cJSON_AddItemToObject(o, key, parsed);
    else cJSON_AddStringToObject(o, key, value);
    free(value);
}

/* "search_calibration" as {"queries": N, "settings": [{"k", "recall", "ncells",
 * "threshold", "ndocs", "measured_recall"}]}; the raw text if it does not parse. */
static void add_calibration_json(cJSON *o, char *text)
{
    if (!text) return;
    cp_index_calibration cal;
    if (!cp_index_calibration_parse(text, &cal)) {
        cJSON_AddStringToObject(o, "search_calibration", text);
        free(text);
        return;
    }
    free(text);
    cJSON *c = cJSON_AddObjectToObject(o, "search_calibration");
    cJSON_AddNumberToObject(c, "queries", cal.n_queries);
    cJSON *arr = cJSON_AddArrayToObject(c, "settings");
    for (int i = 0; i < cal.n_settings; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "k", cal.k[i]);
        cJSON_AddNumberToObject(e, "recall", round(cal.target[i] * 1000) / 1000);
        cJSON_AddNumberToObject(e, "ncells", cal.ncells[i]);
        cJSON_AddNumberToObject(e, "threshold", round(cal.threshold[i] * 1000) / 1000);
        cJSON_AddNumberToObject(e, "ndocs", cal.ndocs[i]);
        cJSON_AddNumberToObject(e, "measured_recall", round(cal.measured[i] * 10000) / 10000);
        cJSON_AddBoolToObject(e, "exhaustive", cal.ncells[i] == 0);
        cJSON_AddItemToArray(arr, e);
    }
}

static void print_calibration_text(char *text)
{
    if (!text) {
        printf("%-15s none (PLAID's fixed defaults; run `colplaid index calibrate`)\n",
               "calibration");
        return;
    }
    cp_index_calibration cal;
    if (!cp_index_calibration_parse(text, &cal)) {
        printf("%-15s %s (unreadable: PLAID's fixed defaults are used)\n", "calibration", text);
        free(text);
        return;
    }
    free(text);
    printf("%-15s %d pseudo-queries; per k and recall target: ncells / threshold / ndocs "
           "(measured recall)\n",
           "calibration", cal.n_queries);
    for (int i = 0; i < cal.n_settings; i++)
        if (cal.ncells[i] == 0)
            printf("%-15s k=%-3d recall %.3f: exhaustive (cheaper than any setting)\n", "",
                   cal.k[i], cal.target[i]);
        else
            printf("%-15s k=%-3d recall %.3f: %d / %.2f / %d (%.3f)\n", "", cal.k[i],
                   cal.target[i], cal.ncells[i], cal.threshold[i], cal.ndocs[i], cal.measured[i]);
}

/* meta "pooling" ({"factor": F, "linkage": L}, written by a pooled build; docs/pooling.md):
 * the factor (1 when absent) and the linkage (NULL when absent or unpooled). */
static int pool_factor(cp_index *ix, char *linkage, size_t size)
{
    char *text = cp_index_meta_get(ix, "pooling");
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "factor");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "linkage");
    int factor = cJSON_IsNumber(f) && f->valuedouble >= 1 && f->valuedouble <= 64
                     ? (int)f->valuedouble
                     : 1;
    linkage[0] = 0;
    if (factor > 1 && cJSON_IsString(l)) snprintf(linkage, size, "%s", l->valuestring);
    cJSON_Delete(o);
    free(text);
    return factor;
}

static int print_info_json(cp_index *ix, const char *path, const cp_index_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "index", path);
    cJSON_AddNumberToObject(o, "format_version", s->format_version);
    cJSON_AddNumberToObject(o, "dim", s->dim);
    cJSON_AddNumberToObject(o, "nbits", s->nbits);
    cJSON_AddStringToObject(o, "codec", s->codec ? s->codec : "colbert");
    cJSON_AddNumberToObject(o, "n_centroids", (double)s->n_centroids);
    char fp[24];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)cp_index_codec_fingerprint(ix));
    cJSON_AddStringToObject(o, "codec_fingerprint", fp);
    cJSON_AddNumberToObject(o, "n_documents", (double)s->n_documents);
    cJSON_AddNumberToObject(o, "n_deleted", (double)s->n_deleted);
    cJSON_AddNumberToObject(o, "n_tokens", (double)s->n_tokens);
    cJSON_AddNumberToObject(o, "n_segments", (double)s->n_segments);
    cJSON_AddNumberToObject(o, "bytes_on_disk", (double)s->bytes_on_disk);
    cJSON_AddNumberToObject(o, "bytes_in_memory", (double)s->bytes_in_memory);
    char linkage[32];
    cJSON_AddNumberToObject(o, "pool_factor", pool_factor(ix, linkage, sizeof linkage));
    if (linkage[0]) cJSON_AddStringToObject(o, "pool_linkage", linkage);
    char *created = cp_index_meta_get(ix, "created_at");
    if (created) cJSON_AddStringToObject(o, "created_at", created);
    free(created);
    add_json_meta(o, "encoder", cp_index_meta_get(ix, "encoder"));
    add_json_meta(o, "build", cp_index_meta_get(ix, "build"));
    add_json_meta(o, "drift", cp_index_meta_get(ix, "drift")); /* docs/live-index.md */
    add_json_meta(o, "windows", cp_index_meta_get(ix, "windows")); /* windowed indexes */
    add_json_meta(o, "shard", cp_index_meta_get(ix, "shard"));     /* index build --shard */
    cJSON_AddBoolToObject(o, "lexical", cp_index_has_lexical(ix)); /* docs/hybrid.md */
    add_calibration_json(o, cp_index_meta_get(ix, "search_calibration"));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return fprintf(stderr, "colplaid index info: out of memory\n"), CP_EXIT_FAILURE;
    puts(text);
    free(text);
    return CP_EXIT_OK;
}

static void print_info_text(cp_index *ix, const char *path, const cp_index_stats *s)
{
    char disk[32], mem[32];
    human_bytes(s->bytes_on_disk, disk, sizeof disk);
    human_bytes(s->bytes_in_memory, mem, sizeof mem);
    printf("index           %s\n", path);
    printf("format version  %d\n", s->format_version);
    printf("dim             %d\n", s->dim);
    printf("nbits           %d\n", s->nbits);
    printf("codec           %s\n", s->codec ? s->codec : "colbert");
    printf("centroids       %lld\n", (long long)s->n_centroids);
    printf("fingerprint     %016llx (of the codec: equal in indexes that share one)\n",
           (unsigned long long)cp_index_codec_fingerprint(ix));
    printf("documents       %lld\n", (long long)s->n_documents);
    printf("deleted         %lld\n", (long long)s->n_deleted);
    printf("tokens          %lld\n", (long long)s->n_tokens);
    printf("segments        %lld\n", (long long)s->n_segments);
    printf("on disk         %s\n", disk);
    printf("in memory       %s\n", mem);
    printf("lexical         %s\n", cp_index_has_lexical(ix) ? "yes" : "no");
    char linkage[32];
    int factor = pool_factor(ix, linkage, sizeof linkage);
    if (factor > 1) printf("pool factor     %d (%s linkage)\n", factor, linkage[0] ? linkage : "ward");
    else printf("pool factor     1 (no pooling)\n");
    static const char *const keys[] = {"created_at", "encoder", "build",
                                       "drift",      "windows", "shard"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char *v = cp_index_meta_get(ix, keys[i]);
        if (v) printf("%-15s %s\n", keys[i], v);
        free(v);
    }
    print_calibration_text(cp_index_meta_get(ix, "search_calibration"));
}

/* ------------------------------------------------------------------------------------
 * lexical
 * --------------------------------------------------------------------------------- */

static const char lexical_usage[] =
    "usage: colplaid index lexical --index IDX.db [--alpha A] [--quiet]\n"
    "\n"
    "Add the lexical index (SQLite FTS5 over the stored texts of the live documents) that\n"
    "the lexical and hybrid search modes read, to an index that has none: one built before\n"
    "it existed, or with --no-lexical. One transaction; nothing to do when it has one.\n"
    "Documents stored without a text are not in it. See docs/hybrid.md.\n"
    "\n"
    "  --alpha A   also record A in [0, 1] as the index's default lexical weight for\n"
    "              linear hybrid fusion (meta hybrid), e.g. one measured on held-out queries\n"
    "              with `colplaid eval --mode hybrid --alpha A`\n";

int cp_cmd_index_lexical(int argc, char **argv)
{
    const char *cmd = "index lexical";
    if (wants_help(argc, argv)) return fputs(lexical_usage, stdout), CP_EXIT_OK;
    const char *index = NULL, *alpha_text = NULL;
    bool quiet = false;
    admin_opt opts[] = {
        {"--index", &index, NULL}, {"--alpha", &alpha_text, NULL}, {"--quiet", NULL, &quiet}};
    int rc = parse_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc;
    if (!index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    double alpha = 0;
    if (alpha_text && (!cp_cli_parse_float(alpha_text, &alpha) || !(alpha >= 0 && alpha <= 1)))
        return cp_cli_usage_error(cmd, "--alpha wants a weight in [0, 1], got '%s'", alpha_text);
    cp_error err = {0};
    cp_index *ix = NULL;
    bool added = false;
    if (cp_index_open(index, CP_OPEN_WRITE, &ix, &err) != CP_OK ||
        cp_index_lexical_add(ix, &added, &err) != CP_OK ||
        (alpha_text && cp_index_set_hybrid_alpha(ix, (float)alpha, &err) != CP_OK)) {
        cp_index_close(ix);
        return cp_cli_report(cmd, &err);
    }
    cp_index_close(ix);
    if (!quiet)
        fprintf(stderr, "%s: %s\n", index,
                added ? "lexical index added" : "has a lexical index already");
    return CP_EXIT_OK;
}

/* ------------------------------------------------------------------------------------
 * calibrate
 * --------------------------------------------------------------------------------- */

static const char calibrate_usage[] =
    "usage: colplaid index calibrate --index IDX.db [--quiet]\n"
    "\n"
    "Measure the index's own recall-versus-cost curve and store, for k = 10 and 100 and\n"
    "each recall target (0.90, 0.95, 0.97, 0.99, 0.995), the cheapest search settings\n"
    "(ncells, threshold, ndocs) that reach it. Pseudo-queries are made from a sample of the\n"
    "index's documents and compared with exhaustive search. Build, import and compaction\n"
    "do this themselves; use it for indexes made by older versions. `index info` shows the\n"
    "result; searches use it through --recall (default 0.97).\n";

int cp_cmd_index_calibrate(int argc, char **argv)
{
    const char *cmd = "index calibrate";
    if (wants_help(argc, argv)) return fputs(calibrate_usage, stdout), CP_EXIT_OK;
    const char *index = NULL;
    bool quiet = false;
    admin_opt opts[] = {{"--index", &index, NULL}, {"--quiet", NULL, &quiet}};
    int rc = parse_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc;
    if (!index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    cp_error err = {0};
    cp_index *ix = NULL;
    if (cp_index_open(index, CP_OPEN_WRITE, &ix, &err) != CP_OK ||
        cp_index_calibrate(ix, quiet ? NULL : stderr, &err) != CP_OK) {
        cp_index_close(ix);
        return cp_cli_report(cmd, &err);
    }
    cp_index_close(ix);
    return CP_EXIT_OK;
}

int cp_cmd_index_info(int argc, char **argv)
{
    const char *cmd = "index info";
    if (wants_help(argc, argv)) return fputs(info_usage, stdout), CP_EXIT_OK;
    const char *index = NULL, *format = "text";
    admin_opt opts[] = {{"--index", &index, NULL}, {"--format", &format, NULL}};
    int rc = parse_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc;
    if (!index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    bool json = !strcmp(format, "json");
    if (!json && strcmp(format, "text"))
        return cp_cli_usage_error(cmd, "--format must be text or json, not '%s'", format);
    cp_error err = {0};
    cp_index *ix = NULL;
    cp_index_stats s;
    if (cp_index_open(index, CP_OPEN_READONLY, &ix, &err) != CP_OK ||
        cp_index_stats_get(ix, &s, &err) != CP_OK) {
        cp_index_close(ix);
        return cp_cli_report(cmd, &err);
    }
    rc = CP_EXIT_OK;
    if (json) rc = print_info_json(ix, index, &s);
    else print_info_text(ix, index, &s);
    cp_index_close(ix);
    return rc;
}

/* ------------------------------------------------------------------------------------
 * check
 * --------------------------------------------------------------------------------- */

static const char check_usage[] =
    "usage: colplaid index check --index IDX.db\n"
    "\n"
    "Verify an index file: SQLite integrity, every segment's checksum and sizes, documents\n"
    "against segments, the codec. Prints one line per problem on stdout and exits 1 if\n"
    "anything is damaged, 0 (printing \"ok\") if the index is sound.\n";

int cp_cmd_index_check(int argc, char **argv)
{
    const char *cmd = "index check";
    if (wants_help(argc, argv)) return fputs(check_usage, stdout), CP_EXIT_OK;
    const char *index = NULL;
    admin_opt opts[] = {{"--index", &index, NULL}};
    int rc = parse_opts(cmd, argc, argv, opts, 1);
    if (rc) return rc;
    if (!index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    cp_error err = {0};
    cp_status st = cp_index_check(index, stdout, &err);
    fflush(stdout);
    if (st != CP_OK) return cp_cli_report(cmd, &err);
    printf("%s: ok\n", index);
    return CP_EXIT_OK;
}

/* ------------------------------------------------------------------------------------
 * export
 * --------------------------------------------------------------------------------- */

static const char export_usage[] =
    "usage: colplaid index export --index IDX.db --out EMB.npy --doclens-out DOCLENS.npy\n"
    "                             [--ids IDS.txt]\n"
    "\n"
    "Write the decompressed, L2-normalised token embeddings of every live document, in\n"
    "internal id order: EMB.npy float32 [tokens, dim], DOCLENS.npy int64 [documents] and,\n"
    "with --ids, the external ids one per line. The result can be fed back to\n"
    "'colplaid index build --embeddings EMB.npy --doclens DOCLENS.npy --ids IDS.txt'.\n";

int cp_cmd_index_export(int argc, char **argv)
{
    const char *cmd = "index export";
    if (wants_help(argc, argv)) return fputs(export_usage, stdout), CP_EXIT_OK;
    const char *index = NULL, *out = NULL, *doclens = NULL, *ids = NULL;
    admin_opt opts[] = {{"--index", &index, NULL}, {"--out", &out, NULL},
                        {"--doclens-out", &doclens, NULL}, {"--ids", &ids, NULL}};
    int rc = parse_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc;
    if (!index) return cp_cli_usage_error(cmd, "--index IDX.db is required");
    if (!out) return cp_cli_usage_error(cmd, "--out EMB.npy is required");
    if (!doclens) return cp_cli_usage_error(cmd, "--doclens-out DOCLENS.npy is required");
    cp_error err = {0};
    cp_index *ix = NULL;
    cp_status st = cp_index_open(index, CP_OPEN_READONLY, &ix, &err);
    if (st == CP_OK) st = cp_index_export(ix, out, doclens, ids, &err);
    cp_index_close(ix);
    if (st != CP_OK) return cp_cli_report(cmd, &err);
    return CP_EXIT_OK;
}

/* ------------------------------------------------------------------------------------
 * set-model
 * --------------------------------------------------------------------------------- */

static const char set_model_usage[] =
    "usage: colplaid index set-model --index IDX.db --model MODEL [--quiet]\n"
    "\n"
    "Record MODEL as the model of the index (its fingerprint, meta \"encoder\"): a\n"
    "deliberate model swap, after which search, eval, index add and serve accept MODEL for\n"
    "this index and refuse the model it had before. The vectors already stored are not\n"
    "re-encoded: use it when the new model's vectors are comparable (a re-saved, converted\n"
    "or lightly fine-tuned checkpoint), else rebuild the index. Also upgrades a fingerprint\n"
    "recorded before fingerprint version 2. The index keeps its dims: MODEL encodes the\n"
    "first dim of its head's (renormalised). Prints the old and the new fingerprint.\n";

int cp_cmd_index_set_model(int argc, char **argv)
{
    const char *cmd = "index set-model";
    if (wants_help(argc, argv)) return fputs(set_model_usage, stdout), CP_EXIT_OK;
    const char *index = NULL, *model = NULL;
    bool quiet = false;
    admin_opt opts[] = {
        {"--index", &index, NULL}, {"--model", &model, NULL}, {"--quiet", NULL, &quiet}};
    int rc = parse_opts(cmd, argc, argv, opts, sizeof opts / sizeof opts[0]);
    if (rc) return rc;
    if (!index || !model)
        return cp_cli_usage_error(cmd, "--index IDX.db and --model MODEL are required");
    cp_error err = {0};
    cp_index *ix = NULL;
    cp_encoder *enc = NULL;
    cp_index_stats s;
    char *old = NULL;
    cp_status st = cp_index_open(index, CP_OPEN_WRITE, &ix, &err);
    if (st == CP_OK) st = cp_index_stats_get(ix, &s, &err);
    if (st == CP_OK) st = cp_encoder_load(model, NULL, &enc, &err);
    if (st == CP_OK && s.dim != cp_encoder_dim(enc)) st = cp_encoder_set_dim(enc, s.dim, &err);
    if (st == CP_OK) {
        old = cp_index_meta_get(ix, "encoder");
        st = cp_index_set_encoder(ix, cp_encoder_fingerprint(enc), &err);
    }
    if (st == CP_OK && !quiet)
        printf("%s: model recorded\nold: %s\nnew: %s\n", index, old ? old : "(none)",
               cp_encoder_fingerprint(enc));
    free(old);
    cp_encoder_free(enc);
    cp_index_close(ix);
    if (st != CP_OK) return cp_cli_report(cmd, &err);
    return fflush(stdout) == 0 ? CP_EXIT_OK : CP_EXIT_FAILURE;
}
