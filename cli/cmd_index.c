/*
 * `colplaid index <action>`: dispatch, and the `build`, `train` and `merge` actions (CLI.md).
 *
 * build reads either a text corpus (encoded here with --model) or precomputed token
 * embeddings (.npy), and calls cp_index_build, which writes the file atomically: on any
 * failure nothing is left at --index. train (cp_index_train_codec) parses the same options
 * and writes a codec file; merge (cp_index_merge) joins indexes that share a codec
 * (docs/index-format.md "Shards and shared codecs"). import/info/check/export live in
 * cmd_index_admin.c; add/delete/compact in cmd_index_write.c.
 *
 * Exit status: 0 success, 1 the build failed (bad input data, I/O), 2 bad usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "cmd_index_admin.h"
#include "cmd_index_write.h"
#include "commands.h"
#include "cp_cpu.h"

/* The action being parsed ("index build" or "index train"), for usage messages. */
static const char *g_cmd = "index build";

static const char build_usage[] =
    "usage: colplaid index build --index IDX.db\n"
    "         (--corpus PATH --model MODEL | --embeddings EMB.npy --doclens DOCLENS.npy\n"
    "          [--ids IDS.txt])\n"
    "         [--nbits 1|2|4|8] [--centroids K] [--kmeans-iters N] [--seed S]\n"
    "         [--threads N] [--segment-docs N] [--kmeans-points N] [--centroid-scale N]\n"
    "         [--codec scaled|colbert] [--pool-factor N [--pool-linkage ward|average]]\n"
    "         [--window N [--stride S] [--doc-score maxsim|maxp]]\n"
    "         [--dim D] [--no-calibrate] [--no-lexical] [--force] [--quiet]\n"
    "         [--codec-from CODEC.db [--shard I/N]]\n"
    "\n"
    "Build a new index file from a text corpus or from precomputed token embeddings.\n"
    "\n"
    "  --index IDX.db        the index file to create (written atomically: a failed build\n"
    "                        leaves nothing behind)\n"
    "  --corpus PATH         BEIR folder (corpus.jsonl), .jsonl of {\"_id\"|\"id\", \"text\",\n"
    "                        \"title\"?, \"metadata\"?} or .tsv of id<TAB>text; needs --model\n"
    "  --model MODEL         model directory used to encode the corpus (the index records\n"
    "                        its fingerprint: searches and adds must use the same model)\n"
    "  --dim D               keep the first D of the model's dimensions, renormalised\n"
    "                        (Matryoshka heads; a multiple of 8; default: the model\n"
    "                        config's truncate_dim, else all). Recorded: searches, adds\n"
    "                        and the server encode the same D\n"
    "  --embeddings EMB.npy  float32/float16 [total_tokens, dim] (dim a multiple of 8)\n"
    "  --doclens DOCLENS.npy int32/int64 [n_docs]; every document needs at least one token\n"
    "  --ids IDS.txt         one unique external id per line (default: 0, 1, 2, ...)\n"
    "  --nbits B             residual bits per dimension (default 2)\n"
    "  --codec C             residual codec: scaled (default: residual norms kept apart,\n"
    "                        one byte more per token, less loss) or colbert (ColBERTv2's)\n"
    "  --centroids K         number of centroids (default: PLAID's 2^floor(log2(16 sqrt(E)))\n"
    "                        times the centroid scale, at most the training vectors)\n"
    "  --kmeans-iters N      k-means iterations (default 4; ColBERTv2 used 20)\n"
    "  --seed S              random seed (default 42); same input + seed = same index\n"
    "  --threads N           worker threads (default: all cores)\n"
    "  --segment-docs N      documents per stored segment (default 4096)\n"
    "  --kmeans-points N     k-means trains on at most N sampled vectors per centroid\n"
    "                        (default 32; the reference uses up to 256: slower)\n"
    "  --centroid-scale N    multiply the default number of centroids by N (default: the\n"
    "                        model's; 4 for the static model, else 1)\n"
    "  --pool-factor N       token pooling: cluster each document's token vectors into\n"
    "                        about 1/N as many (ceil(tokens / N)), each kept as its group's\n"
    "                        renormalised mean (default 1: off; 2..64); later `index add`\n"
    "                        and HTTP upserts pool the same way; queries are never pooled\n"
    "  --pool-linkage L      the clustering's linkage: ward (default) or average\n"
    "  --window N            encode a document longer than N tokens as overlapping windows\n"
    "                        of N tokens (late chunking: each with its neighbours' text as\n"
    "                        context), stored as one document; results carry the best\n"
    "                        window's character span. N <= the model's position limit.\n"
    "                        Default: the model config's \"window\"; 0 turns windows off\n"
    "  --stride S            tokens between window starts (default N - N/4)\n"
    "  --doc-score D         a windowed document's score: maxsim (all its tokens) or\n"
    "                        maxp (its best window); default maxp (measured better)\n"
    "  --no-calibrate        skip measuring the search settings per recall target (searches\n"
    "                        then use PLAID's fixed defaults; `colplaid index calibrate` later)\n"
    "  --no-lexical          with --corpus: no lexical (FTS5) index of the texts, which the\n"
    "                        lexical and hybrid search modes need (default: one is built)\n"
    "  --force               replace an existing file at --index\n"
    "  --quiet               no progress output\n"
    "  --codec-from FILE     use the codec of FILE (a codec file from `index train`, or any\n"
    "                        index) instead of training one: indexes built with one codec\n"
    "                        can be merged (`index merge`) and their scores compared. Not\n"
    "                        with --nbits, --codec, --centroids, --centroid-scale,\n"
    "                        --kmeans-iters, --kmeans-points, --seed (the codec's own)\n"
    "  --shard I/N           keep only the documents of shard I of N (0 <= I < N): those\n"
    "                        whose external id hashes to I (docs/index-format.md, \"Shards\n"
    "                        and shared codecs\"); needs --codec-from. An empty shard gives\n"
    "                        an empty index\n"
    "\n"
    "Rejected input (exit 1, nothing written): a dimension that is not a multiple of 8,\n"
    "duplicate ids, NaN/Inf or all-zero vectors, doclens that do not add up to the\n"
    "embedding rows, empty documents, an empty corpus.\n";

static const char index_usage[] =
    "usage: colplaid index <action> [options]   (colplaid index <action> --help)\n"
    "\n"
    "actions:\n"
    "  build    build a new index from a corpus or precomputed embeddings\n"
    "  import   import a Stanford ColBERT / RAGatouille PLAID index\n"
    "  info     show an index's parameters and sizes\n"
    "  calibrate measure and store the search settings per recall target\n"
    "  check    verify an index file's integrity\n"
    "  export   write the decompressed token embeddings as .npy\n"
    "  train    train a codec only (centroids, buckets) to share between builds\n"
    "  merge    merge indexes that share a codec into one\n"
    "  add      add or replace documents by id\n"
    "  delete   delete documents by id or metadata filter\n"
    "  compact  rewrite segments without deleted documents\n"
    "  lexical  add the lexical (FTS5) index to an index that has none\n"
    "  set-model record a model as the index's (a deliberate model swap)\n";

typedef struct build_args {
    const char *index, *corpus, *model, *embeddings, *doclens, *ids;
    const char *out;      /* index train: --out CODEC.db */
    const char *shard;    /* --shard I/N, parsed into opts.shard_index / shard_count */
    const char *training; /* the first training option given (refused with --codec-from) */
    cp_build_options opts;
    int centroid_scale; /* --centroid-scale; 0: the model's */
    int dim;            /* --dim: the head's first D dims, renormalised; 0: the model's */
    bool quiet;
    /* --window / --stride / --doc-score (colplaid/window.h): -1 = not given (the model's
     * default windows, if any); --window 0 turns windows off. */
    int window, stride;
    const char *doc_score;
    bool no_lexical; /* --no-lexical: a --corpus build without the lexical index */
} build_args;

/* The value of option argv[*i] ("--x v" or "--x=v"), advancing *i; NULL if missing. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (a[n] == '=') return a + n + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

static bool is_option(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && (arg[n] == '\0' || arg[n] == '=');
}

static int parse_int_option(const char *v, const char *name, int64_t min, int64_t max, int64_t *out)
{
    if (!v) return cp_cli_usage_error(g_cmd, "%s needs a value", name);
    if (!cp_cli_parse_int(v, min, max, out))
        return cp_cli_usage_error(g_cmd, "%s: '%s' is not a whole number in %lld..%lld", name, v,
                                  (long long)min, (long long)max);
    return 0;
}

/* Options taking a number. Returns -1 if arg is not one of them, else 0 or an exit code. */
static int parse_numeric(build_args *a, int argc, char **argv, int *i)
{
    static const struct {
        const char *name;
        int64_t min, max;
    } nums[] = {
        {"--nbits", 1, 8},
        {"--centroids", 1, INT32_MAX},
        {"--kmeans-iters", 1, 1000},
        {"--seed", 0, INT64_MAX},
        {"--threads", 0, 1024},
        {"--segment-docs", 1, 1 << 24},
        {"--kmeans-points", 1, 100000},
        {"--centroid-scale", 1, 64},
        {"--pool-factor", 1, 64},
        {"--dim", 8, 65536},
    };
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        if (!is_option(argv[*i], nums[k].name)) continue;
        int64_t v = 0;
        int rc = parse_int_option(option_value(argc, argv, i, nums[k].name), nums[k].name,
                                  nums[k].min, nums[k].max, &v);
        if (rc) return rc;
        if (k != 4 && k != 5 && k != 8 && !a->training) a->training = nums[k].name;
        switch (k) {
        case 0:
            if (v != 1 && v != 2 && v != 4 && v != 8)
                return cp_cli_usage_error(g_cmd, "--nbits must be 1, 2, 4 or 8");
            a->opts.nbits = (int)v;
            break;
        case 1:
            a->opts.n_centroids = v;
            break;
        case 2:
            a->opts.kmeans_iters = (int)v;
            break;
        case 3:
            a->opts.seed = (uint64_t)v;
            break;
        case 4:
            a->opts.threads = (int)v;
            break;
        case 5:
            a->opts.segment_docs = (int)v;
            break;
        case 6:
            a->opts.kmeans_points_per_centroid = (int)v;
            break;
        case 7:
            a->centroid_scale = (int)v;
            break;
        case 8:
            a->opts.pool_factor = (int)v;
            break;
        default:
            if (v % 8) return cp_cli_usage_error("index build", "--dim must be a multiple of 8");
            a->dim = (int)v;
            break;
        }
        return 0;
    }
    return -1;
}

/* --window N, --stride S, --doc-score maxsim|maxp. -1 if arg is none of them. */
static int parse_window_option(build_args *a, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (is_option(arg, "--doc-score")) {
        const char *v = option_value(argc, argv, i, "--doc-score");
        cp_doc_score unused;
        if (!v || !cp_doc_score_parse(v, &unused))
            return cp_cli_usage_error(g_cmd, "--doc-score wants maxsim or maxp");
        a->doc_score = v;
        return 0;
    }
    bool win = is_option(arg, "--window");
    if (!win && !is_option(arg, "--stride")) return -1;
    const char *name = win ? "--window" : "--stride";
    int64_t v = 0;
    int rc = parse_int_option(option_value(argc, argv, i, name), name, win ? 0 : 1, 1 << 20, &v);
    if (rc) return rc;
    if (win)
        a->window = (int)v;
    else
        a->stride = (int)v;
    return 0;
}

/* The window settings of a text build: the options over the model's default. */
static cp_status resolve_window(build_args *a, cp_encoder *enc, cp_error *err)
{
    cp_window_options w;
    cp_encoder_default_window(enc, &w);
    if (a->window >= 0) {
        w.window = a->window;
        w.stride = a->stride > 0 ? a->stride : a->window - a->window / 4;
    } else if (a->stride > 0 && w.window > 0) {
        w.stride = a->stride;
    }
    if (w.window == 0) {
        a->opts.window.window = a->opts.window.stride = 0;
        return CP_OK;
    }
    a->opts.window = w;
    if (a->doc_score) {
        cp_doc_score d;
        cp_doc_score_parse(a->doc_score, &d);
        a->opts.doc_score = (int)d;
    }
    return cp_encoder_check_window(enc, &w, err);
}

static int parse_build_args(int argc, char **argv, build_args *a)
{
    a->window = a->stride = -1;
    static const char *const strs[] = {"--index",      "--corpus", "--model", "--embeddings",
                                       "--doclens",    "--ids",    "--codec", "--pool-linkage",
                                       "--codec-from", "--shard",  "--out"};
    const char **targets[] = {
        &a->index,           &a->corpus, &a->model,      &a->embeddings,
        &a->doclens,         &a->ids,    &a->opts.codec, &a->opts.pool_linkage,
        &a->opts.codec_from, &a->shard,  &a->out};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--force")) {
            a->opts.force = true;
            continue;
        }
        if (!strcmp(arg, "--no-calibrate")) {
            a->opts.skip_calibration = true;
            continue;
        }
        if (!strcmp(arg, "--no-lexical")) {
            a->no_lexical = true;
            continue;
        }
        if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            a->quiet = true;
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !matched; k++) {
            if (!is_option(arg, strs[k])) continue;
            const char *v = option_value(argc, argv, &i, strs[k]);
            if (!v || !*v) return cp_cli_usage_error(g_cmd, "%s needs a value", strs[k]);
            *targets[k] = v;
            if (k == 6 && !a->training) a->training = "--codec";
            matched = true;
        }
        if (matched) continue;
        int rc = parse_window_option(a, argc, argv, &i);
        if (rc > 0) return rc;
        if (rc == 0) continue;
        rc = parse_numeric(a, argc, argv, &i);
        if (rc > 0) return rc;
        if (rc < 0) return cp_cli_usage_error(g_cmd, "unknown option '%s'", arg);
    }
    return 0;
}

/* --shard I/N into opts.shard_index / shard_count. */
static int parse_shard(build_args *a)
{
    int64_t i = 0, n = 0;
    const char *slash = strchr(a->shard, '/');
    char left[32];
    size_t len = slash ? (size_t)(slash - a->shard) : 0;
    bool ok = slash && len > 0 && len < sizeof left;
    if (ok) {
        memcpy(left, a->shard, len);
        left[len] = 0;
        ok = cp_cli_parse_int(left, 0, 65535, &i) && cp_cli_parse_int(slash + 1, 1, 65536, &n) &&
             i < n;
    }
    if (!ok)
        return cp_cli_usage_error(
            g_cmd, "--shard wants I/N with 0 <= I < N <= 65536 (e.g. 0/4), not '%s'", a->shard);
    a->opts.shard_index = (uint32_t)i;
    a->opts.shard_count = (uint32_t)n;
    return 0;
}

static int check_build_args(build_args *a)
{
    if (a->out)
        return cp_cli_usage_error(g_cmd, "--out is for index train; build writes --index IDX.db");
    if (!a->index) return cp_cli_usage_error(g_cmd, "--index IDX.db is required");
    if (a->shard && !a->opts.codec_from)
        return cp_cli_usage_error(g_cmd, "--shard needs --codec-from: shards must share one codec "
                                         "(train it first with `colplaid index train`)");
    if (a->opts.codec_from && a->training)
        return cp_cli_usage_error(g_cmd, "%s does not go with --codec-from (the codec is FILE's)",
                                  a->training);
    if (a->shard) {
        int rc = parse_shard(a);
        if (rc) return rc;
    }
    bool text = a->corpus || a->model, emb = a->embeddings || a->doclens || a->ids;
    if (text && emb)
        return cp_cli_usage_error(
            g_cmd, "give either --corpus/--model or --embeddings/--doclens, not both");
    if (!text && !emb)
        return cp_cli_usage_error(g_cmd, "an input is required: --corpus PATH --model MODEL, or "
                                         "--embeddings EMB.npy --doclens DOCLENS.npy");
    if (text && (!a->corpus || !a->model))
        return cp_cli_usage_error(g_cmd, "--corpus and --model go together");
    if (emb && (!a->embeddings || !a->doclens))
        return cp_cli_usage_error(g_cmd, "--embeddings and --doclens go together");
    if (a->opts.pool_linkage && strcmp(a->opts.pool_linkage, "ward") &&
        strcmp(a->opts.pool_linkage, "average"))
        return cp_cli_usage_error(g_cmd, "--pool-linkage must be ward or average, not '%s'",
                                  a->opts.pool_linkage);
    if (a->opts.pool_linkage && a->opts.pool_factor < 2)
        return cp_cli_usage_error(g_cmd, "--pool-linkage needs --pool-factor 2 or more");
    if (emb && a->dim)
        return cp_cli_usage_error(g_cmd, "--dim needs a text --corpus and --model");
    if (emb && (a->window >= 0 || a->stride >= 0 || a->doc_score))
        return cp_cli_usage_error(g_cmd, "--window, --stride and --doc-score need a text --corpus");
    if (a->stride > 0 && a->window > 0 && a->stride > a->window)
        return cp_cli_usage_error(g_cmd, "--stride %d is larger than --window %d", a->stride,
                                  a->window);
    if (a->opts.pool_factor > 1 && a->window > 0)
        return cp_cli_usage_error(g_cmd, "--pool-factor and --window do not go together (pooling "
                                         "would merge tokens across the windows' bounds)");
    return 0;
}

/* An interrupted build (Ctrl-C, kill) must not leave its temporary file behind. The names
 * are computed before the build starts; the handler only calls unlink and _exit, which are
 * async-signal-safe. */
static char interrupt_paths[4][4200];

static void on_interrupt(int sig)
{
    for (int i = 0; i < 4; i++)
        if (interrupt_paths[i][0]) unlink(interrupt_paths[i]);
    _exit(128 + sig);
}

static void install_interrupt_cleanup(const char *index_path)
{
    char tmp[4096];
    if (!cp_index_build_temp_path(index_path, tmp, sizeof tmp)) return;
    static const char *const suffixes[4] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++)
        snprintf(interrupt_paths[i], sizeof interrupt_paths[i], "%s%s", tmp, suffixes[i]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int run_build(build_args *a, bool train)
{
    cp_error err = {0};
    cp_doc_source src = {0};
    cp_encoder *enc = NULL;
    cp_status st;
    int threads = a->opts.threads > 0 ? a->opts.threads : cp_cpu_count();
    if (a->corpus) {
        cp_encoder_options eo;
        cp_encoder_options_init(&eo);
        eo.threads = threads;
        eo.dim = a->dim;
        st = cp_encoder_load(a->model, &eo, &enc, &err);
        if (st == CP_OK) st = resolve_window(a, enc, &err);
        if (st == CP_OK)
            st = cp_text_source_open_windowed(a->corpus, enc, threads, &a->opts.window, &src, &err);
        if (st == CP_OK && a->opts.shard_count > 1)
            cp_text_source_keep_shard(&src, a->opts.shard_index, a->opts.shard_count);
        if (st == CP_OK) a->opts.encoder_json = cp_encoder_fingerprint(enc);
        if (st == CP_OK) a->opts.centroid_scale = cp_encoder_centroid_scale(enc);
        a->opts.lexical = !a->no_lexical;
    } else {
        st = cp_doc_source_npy_open(a->embeddings, a->doclens, a->ids, &src, &err);
    }
    if (a->centroid_scale > 0) a->opts.centroid_scale = a->centroid_scale;
    if (st == CP_OK) {
        install_interrupt_cleanup(a->index);
        a->opts.progress = a->quiet ? NULL : stderr;
        st = train ? cp_index_train_codec(a->index, &src, &a->opts, &err)
                   : cp_index_build(a->index, &src, &a->opts, &err);
    }
    if (src.close) src.close(src.ctx);
    cp_encoder_free(enc);
    if (st != CP_OK) return cp_cli_report(g_cmd, &err);
    if (!a->quiet) fprintf(stderr, "wrote %s\n", a->index);
    return CP_EXIT_OK;
}

static int cmd_build(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(build_usage, stdout);
            return CP_EXIT_OK;
        }
    build_args a = {0};
    cp_build_options_init(&a.opts);
    int rc = parse_build_args(argc, argv, &a);
    if (rc) return rc;
    if ((rc = check_build_args(&a))) return rc;
    return run_build(&a, false);
}

/* ------------------------------------------------------------------------------------
 * train
 * --------------------------------------------------------------------------------- */

static const char train_usage[] =
    "usage: colplaid index train --out CODEC.db\n"
    "         (--corpus PATH --model MODEL [--window N [--stride S]]\n"
    "          | --embeddings EMB.npy --doclens DOCLENS.npy [--ids IDS.txt])\n"
    "         [--nbits 1|2|4|8] [--codec scaled|colbert] [--centroids K] [--centroid-scale N]\n"
    "         [--kmeans-iters N] [--kmeans-points N] [--seed S] [--threads N]\n"
    "         [--force] [--quiet]\n"
    "\n"
    "Train a codec only (centroids and residual buckets) from a sample of the input, as\n"
    "`index build` would with the same options and seed, and write it as a codec file: an\n"
    "index file with the codec and no documents. Builds then share it with\n"
    "`index build --codec-from CODEC.db [--shard I/N]`, and `index merge` joins them.\n"
    "Only the sampled documents are encoded (every id is read, and must be unique).\n"
    "\n"
    "  --out CODEC.db   the codec file to create (written atomically)\n"
    "  other options    as for `colplaid index build` (see its --help)\n";

static int cmd_train(int argc, char **argv)
{
    g_cmd = "index train";
    static const char *const refused[] = {"--index",        "--segment-docs", "--pool-factor",
                                          "--pool-linkage", "--doc-score",    "--no-calibrate",
                                          "--no-lexical",   "--codec-from",   "--shard"};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(train_usage, stdout);
            return CP_EXIT_OK;
        }
        for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++)
            if (is_option(argv[i], refused[k]))
                return cp_cli_usage_error(g_cmd, "%s does not apply to index train%s", refused[k],
                                          k == 0 ? " (it writes --out CODEC.db)" : "");
    }
    build_args a = {0};
    cp_build_options_init(&a.opts);
    int rc = parse_build_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.out) return cp_cli_usage_error(g_cmd, "--out CODEC.db is required");
    a.index = a.out;
    a.out = NULL;
    if ((rc = check_build_args(&a))) return rc;
    return run_build(&a, true);
}

/* ------------------------------------------------------------------------------------
 * merge
 * --------------------------------------------------------------------------------- */

static const char merge_usage[] =
    "usage: colplaid index merge --out ALL.db [--force] [--no-calibrate] [--quiet]\n"
    "         IDX.db [IDX.db ...]\n"
    "\n"
    "Merge indexes that share a codec (built with `index build --codec-from`, e.g. the\n"
    "shards of one corpus) into a new index. The live documents are copied as stored\n"
    "(compressed tokens, texts, metadata, windows; no re-encoding), in the order of the\n"
    "inputs; the output has a lexical index when any input has one. Written atomically.\n"
    "\n"
    "  --out ALL.db     the merged index to create\n"
    "  --force          replace an existing file at --out\n"
    "  --no-calibrate   skip the search calibration of the merged index\n"
    "  --quiet          no progress output\n"
    "\n"
    "Refused (exit 2, nothing written): inputs whose codecs differ (compared exactly), or\n"
    "that come from different models or pooling or window settings. An id that is live in\n"
    "two inputs fails the merge (exit 1, nothing written).\n";

static int cmd_merge(int argc, char **argv)
{
    const char *cmd = "index merge";
    const char *out = NULL;
    cp_merge_options mo = {0};
    bool quiet = false;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    if (!inputs) return fprintf(stderr, "colplaid %s: out of memory\n", cmd), CP_EXIT_FAILURE;
    size_t n = 0;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(merge_usage, stdout);
            free(inputs);
            return CP_EXIT_OK;
        } else if (!strcmp(arg, "--force")) {
            mo.force = true;
        } else if (!strcmp(arg, "--no-calibrate")) {
            mo.skip_calibration = true;
        } else if (!strcmp(arg, "--quiet") || !strcmp(arg, "-q")) {
            quiet = true;
        } else if (is_option(arg, "--out")) {
            out = option_value(argc, argv, &i, "--out");
            if (!out || !*out) rc = cp_cli_usage_error(cmd, "--out needs a value");
        } else if (arg[0] == '-' && arg[1]) {
            rc = cp_cli_usage_error(cmd, "unknown option '%s'", arg);
        } else {
            inputs[n++] = arg;
        }
    }
    if (!rc && !out) rc = cp_cli_usage_error(cmd, "--out ALL.db is required");
    if (!rc && n == 0) rc = cp_cli_usage_error(cmd, "name the indexes to merge");
    if (rc) {
        free(inputs);
        return rc;
    }
    cp_error err = {0};
    mo.progress = quiet ? NULL : stderr;
    install_interrupt_cleanup(out);
    cp_status st = cp_index_merge(out, inputs, n, &mo, &err);
    free(inputs);
    if (st != CP_OK) {
        cp_cli_report(cmd, &err);
        /* incompatible inputs (codecs, models, settings) or a bad output path: usage */
        return st == CP_EINVAL ? CP_EXIT_USAGE : CP_EXIT_FAILURE;
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return CP_EXIT_OK;
}

int cp_cmd_index(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } actions[] = {
        {"build", cmd_build},
        {"train", cmd_train},
        {"merge", cmd_merge},
        {"import", cp_cmd_index_import},
        {"info", cp_cmd_index_info},
        {"calibrate", cp_cmd_index_calibrate},
        {"check", cp_cmd_index_check},
        {"export", cp_cmd_index_export},
        {"add", cp_cmd_index_add},
        {"delete", cp_cmd_index_delete},
        {"compact", cp_cmd_index_compact},
        {"lexical", cp_cmd_index_lexical},
        {"set-model", cp_cmd_index_set_model},
    };
    if (argc < 2) {
        fputs(index_usage, stderr);
        return CP_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(index_usage, stdout);
        return CP_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (!strcmp(argv[1], actions[i].name)) return actions[i].run(argc - 1, argv + 1);
    fprintf(stderr, "colplaid index: unknown action '%s'\n", argv[1]);
    fputs(index_usage, stderr);
    return CP_EXIT_USAGE;
}
