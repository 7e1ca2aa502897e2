/*
 * Crash test of the live index: runs `colplaid index add|delete|compact` as child processes
 * and kills them with SIGKILL at random moments. After every kill:
 *   - the index opens;
 *   - `colplaid index check` passes;
 *   - the live documents are exactly those of the acknowledged writes (a "committed" line
 *     on the child's stdout), each with its committed content: vectors equal to the
 *     compression of the acknowledged version (synthetic corpus) or the text of the
 *     acknowledged version (text corpus). The one write in flight when the kill came may
 *     have committed without its acknowledgement being read; it must then be there whole.
 *
 * usage: test_live_crash COLPLAID [--trials N] [--corpus CORPUS.jsonl --model DIR]
 * Trials default to $CP_CRASH_TRIALS, else 20. Without --corpus the synthetic embeddings
 * corpus is used. Prints the trial and violation counts.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cp_test.h"
#include "live_test_util.h"
#include "colplaid/npy.h"

enum { N_IDS = 300 };

typedef struct state {
    int64_t version[N_IDS]; /* 0: absent */
} state;

typedef struct ctx {
    const char *colplaid, *index, *dir;
    char **texts; /* text mode: the corpus texts, else NULL */
    size_t n_texts;
    const char *model;
    cp_codec codec; /* synthetic mode */
    uint64_t rng;
    int64_t next_version;
    double est_ms[3];
    int64_t n_base; /* documents of the initial build (text mode), never touched */
} ctx;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Run argv with stdout to out_path; kill it after kill_ms (< 0: never). Returns the wait
 * status; *killed says whether it was still running when killed. */
static int run_child(char *const argv[], const char *out_path, double kill_ms, bool *killed)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        char err_path[800];
        snprintf(err_path, sizeof err_path, "%s.err", out_path);
        int dn = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(dn, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    *killed = false;
    int ws = 0;
    if (kill_ms >= 0) {
        struct timespec ts = {(time_t)(kill_ms / 1000), (long)(fmod(kill_ms, 1000.0) * 1e6)};
        nanosleep(&ts, NULL);
        if (waitpid(pid, &ws, WNOHANG) == pid) return ws;
        kill(pid, SIGKILL);
        *killed = true;
    }
    waitpid(pid, &ws, 0);
    return ws;
}

static bool acknowledged(const char *out_path)
{
    FILE *f = fopen(out_path, "r");
    char line[512];
    bool ok = false;
    while (f && fgets(line, sizeof line, f)) ok |= !strncmp(line, "committed", 9);
    if (f) fclose(f);
    return ok;
}

/* ---- inputs of one operation --------------------------------------------------------- */

static void write_ids(const char *path, const int64_t *nums, size_t n)
{
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < n; i++) fprintf(f, "n%lld\n", (long long)nums[i]);
    fclose(f);
}

static char *text_of(const ctx *c, int64_t num, int64_t version)
{
    const char *base = c->texts[(size_t)(num * 7 + version) % c->n_texts];
    char *t = malloc(strlen(base) + 32);
    sprintf(t, "%s version %lld", base, (long long)version);
    return t;
}

static void write_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void write_add_inputs(const ctx *c, const int64_t *nums, size_t n, int64_t version)
{
    char p[700];
    if (c->texts) {
        snprintf(p, sizeof p, "%s/add.jsonl", c->dir);
        FILE *f = fopen(p, "w");
        for (size_t i = 0; i < n; i++) {
            char *t = text_of(c, nums[i], version);
            fprintf(f, "{\"_id\": \"n%lld\", \"text\": ", (long long)nums[i]);
            write_json_string(f, t);
            fputs("}\n", f);
            free(t);
        }
        fclose(f);
        return;
    }
    int64_t total = 0;
    int32_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) total += lens[i] = lt_doc_len(nums[i], version);
    cp_npy_writer w;
    int64_t shape[2] = {total, LT_DIM}, lshape[1] = {(int64_t)n};
    snprintf(p, sizeof p, "%s/add_emb.npy", c->dir);
    cp_npy_write_begin(&w, p, "<f4", shape, 2, NULL);
    float *v = malloc((size_t)24 * LT_DIM * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        lt_doc_vectors(&c->codec, nums[i], version, lens[i], 0, v);
        cp_npy_write_data(&w, v, (size_t)lens[i] * LT_DIM * sizeof *v, NULL);
    }
    cp_npy_write_end(&w, NULL);
    snprintf(p, sizeof p, "%s/add_lens.npy", c->dir);
    cp_npy_write_begin(&w, p, "<i4", lshape, 1, NULL);
    cp_npy_write_data(&w, lens, n * sizeof *lens, NULL);
    cp_npy_write_end(&w, NULL);
    snprintf(p, sizeof p, "%s/add_ids.txt", c->dir);
    write_ids(p, nums, n);
    free(v);
    free(lens);
}

/* ---- verification -------------------------------------------------------------------- */

static int64_t doc_of(cp_index *ix, int64_t num)
{
    char id[32];
    snprintf(id, sizeof id, "n%lld", (long long)num);
    int64_t d = -1;
    cp_index_doc_id(ix, id, &d, NULL);
    return d;
}

static bool content_ok(const ctx *c, cp_index *ix, int64_t num, int64_t version)
{
    int64_t d = doc_of(ix, num);
    if (d < 0) return false;
    if (!c->texts) return lt_content_matches(ix, &c->codec, d, num, version);
    char id[32];
    snprintf(id, sizeof id, "n%lld", (long long)num);
    cp_document_info info;
    if (cp_index_document_get(ix, id, &info, NULL) != CP_OK) return false;
    char *want = text_of(c, num, version);
    bool ok = info.text && !strcmp(info.text, want) && info.doc_id == d;
    free(want);
    cp_document_info_free(&info);
    return ok;
}

static bool g_verbose;

/* Whether the index holds exactly state s (reasons on stderr when g_verbose). */
static bool matches(const ctx *c, cp_index *ix, const state *s)
{
    cp_index_stats st;
    if (cp_index_stats_get(ix, &st, NULL) != CP_OK) return false;
    int64_t live = c->n_base;
    for (int i = 0; i < N_IDS; i++) {
        live += s->version[i] > 0;
        bool bad = (s->version[i] == 0 && doc_of(ix, i) >= 0) ||
                   (s->version[i] > 0 && !content_ok(c, ix, i, s->version[i]));
        if (bad && g_verbose)
            fprintf(stderr, "  n%d: expected version %lld, index has doc %lld\n", i,
                    (long long)s->version[i], (long long)doc_of(ix, i));
        if (bad) return false;
    }
    if (st.n_documents != live && g_verbose)
        fprintf(stderr, "  %lld live documents, expected %lld\n", (long long)st.n_documents,
                (long long)live);
    return st.n_documents == live;
}

static bool check_cli(const ctx *c)
{
    char out[700];
    snprintf(out, sizeof out, "%s/check.out", c->dir);
    char *argv[] = {(char *)c->colplaid, "index", "check", "--index", (char *)c->index, NULL};
    bool killed;
    int ws = run_child(argv, out, -1, &killed);
    return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* ---- one operation ------------------------------------------------------------------- */

typedef enum { OP_ADD, OP_DELETE, OP_COMPACT } op_kind;

/* Prepare a random operation; *after is the state if it commits. */
static op_kind prepare_op(ctx *c, const state *before, state *after)
{
    *after = *before;
    uint64_t r = st_rand(&c->rng) % 10;
    op_kind k = r < 5 ? OP_ADD : r < 9 ? OP_DELETE : OP_COMPACT;
    int64_t nums[N_IDS];
    size_t n = 0;
    bool used[N_IDS] = {0};
    size_t want = 1 + st_rand(&c->rng) % (k == OP_ADD ? 40 : 30);
    for (size_t i = 0; k != OP_COMPACT && i < want; i++) {
        int64_t x = (int64_t)(st_rand(&c->rng) % N_IDS);
        if (!used[x]) used[x] = true, nums[n++] = x;
    }
    char p[700];
    if (k == OP_ADD) {
        int64_t v = ++c->next_version;
        write_add_inputs(c, nums, n, v);
        for (size_t i = 0; i < n; i++) after->version[nums[i]] = v;
    } else if (k == OP_DELETE) {
        snprintf(p, sizeof p, "%s/del_ids.txt", c->dir);
        write_ids(p, nums, n);
        for (size_t i = 0; i < n; i++) after->version[nums[i]] = 0;
    }
    return k;
}

static int run_op(ctx *c, op_kind k, double kill_ms, bool *acked, bool *killed)
{
    char a1[700], a2[700], a3[700], out[700];
    snprintf(out, sizeof out, "%s/op.out", c->dir);
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)c->colplaid;
    argv[n++] = "index";
    argv[n++] = k == OP_ADD ? "add" : k == OP_DELETE ? "delete" : "compact";
    argv[n++] = "--index";
    argv[n++] = (char *)c->index;
    argv[n++] = "--quiet";
    if (k == OP_ADD && c->texts) {
        snprintf(a1, sizeof a1, "%s/add.jsonl", c->dir);
        argv[n++] = "--corpus", argv[n++] = a1, argv[n++] = "--model", argv[n++] = (char *)c->model;
    } else if (k == OP_ADD) {
        snprintf(a1, sizeof a1, "%s/add_emb.npy", c->dir);
        snprintf(a2, sizeof a2, "%s/add_lens.npy", c->dir);
        snprintf(a3, sizeof a3, "%s/add_ids.txt", c->dir);
        argv[n++] = "--embeddings", argv[n++] = a1, argv[n++] = "--doclens", argv[n++] = a2;
        argv[n++] = "--ids", argv[n++] = a3;
    } else if (k == OP_DELETE) {
        snprintf(a1, sizeof a1, "%s/del_ids.txt", c->dir);
        argv[n++] = "--ids", argv[n++] = a1;
    }
    argv[n] = NULL;
    double t0 = now_ms();
    int ws = run_child(argv, out, kill_ms, killed);
    if (!*killed) c->est_ms[k] = 0.7 * c->est_ms[k] + 0.3 * (now_ms() - t0);
    *acked = acknowledged(out);
    return ws;
}

/* One trial: an operation killed at a random moment of its expected duration, then the
 * checks. Returns the number of violations (0 or 1). */
static int g_killed, g_acked_before_kill;

static int trial(ctx *c, state *s, int t, int *applied_unacked)
{
    state after;
    op_kind k = prepare_op(c, s, &after);
    /* half the kills anywhere in the expected run time, half near its end (the commit) */
    double u = (double)(st_rand(&c->rng) % 10000) / 10000.0;
    double kill_ms = c->est_ms[k] * (t % 2 ? 1.2 * u : 0.75 + 0.35 * u);
    bool acked = false, killed = false;
    int ws = run_op(c, k, kill_ms, &acked, &killed);
    g_killed += killed;
    g_acked_before_kill += killed && acked;
    if (!killed && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        fprintf(stderr, "trial %d: operation %d failed without a kill (status %d)\n", t, k, ws);
        return 1;
    }
    cp_index *ix = NULL;
    cp_error err = {0};
    if (cp_index_open(c->index, CP_OPEN_READONLY, &ix, &err) != CP_OK) {
        fprintf(stderr, "trial %d: the index does not open: %s\n", t, err.message);
        return 1;
    }
    int bad = 0;
    if (!check_cli(c)) {
        fprintf(stderr, "trial %d: colplaid index check fails\n", t);
        bad = 1;
    } else if (acked ? matches(c, ix, &after) : matches(c, ix, s)) {
        if (acked) *s = after;
    } else if (!acked && matches(c, ix, &after)) {
        *s = after; /* committed just before the kill: whole, as it must be */
        (*applied_unacked)++;
    } else {
        fprintf(stderr, "trial %d: live documents differ from the acknowledged writes "
                "(op %d, acked %d, killed %d)\n", t, k, acked, killed);
        g_verbose = true;
        matches(c, ix, acked ? &after : s);
        g_verbose = false;
        bad = 1;
    }
    cp_index_close(ix);
    return bad;
}

static char **load_texts(const char *corpus, size_t *n)
{
    FILE *f = fopen(corpus, "r");
    if (!f) return NULL;
    char **v = NULL, *line = NULL;
    size_t cap = 0, m = 0;
    ssize_t len;
    while (m < 2000 && (len = getline(&line, &cap, f)) > 0) {
        char *t = strstr(line, "\"text\": \"");
        if (!t) continue;
        t += 9;
        char *e = t;
        while (*e && !(*e == '"' && e[-1] != '\\')) e++;
        *e = 0;
        /* keep plain text only: drop escapes, so the JSON we write back is simple */
        char *o = t;
        for (char *p = t; *p; p++)
            if (*p != '\\') *o++ = *p;
        *o = 0;
        if (strlen(t) < 20) continue;
        v = realloc(v, (m + 1) * sizeof *v);
        v[m++] = strdup(t);
    }
    free(line);
    fclose(f);
    *n = m;
    return v;
}

static int setup_index(ctx *c, state *s)
{
    char p[700];
    snprintf(p, sizeof p, "%s/idx.db", c->dir);
    c->index = strdup(p);
    cp_error err = {0};
    if (!c->texts) {
        if (lt_create(c->index, &c->codec, 77, &err) != CP_OK) {
            fprintf(stderr, "setup: %s\n", err.message);
            return 1;
        }
    } else {
        snprintf(p, sizeof p, "%s/base.jsonl", c->dir);
        FILE *f = fopen(p, "w");
        for (size_t i = 0; i < c->n_texts && i < 300; i++, c->n_base++) {
            fprintf(f, "{\"_id\": \"base%zu\", \"text\": ", i);
            write_json_string(f, c->texts[i]);
            fputs("}\n", f);
        }
        fclose(f);
        char *argv[] = {(char *)c->colplaid, "index", "build", "--index", (char *)c->index,
                        "--corpus", p, "--model", (char *)c->model, "--quiet", NULL};
        bool killed;
        char out[700];
        snprintf(out, sizeof out, "%s/build.out", c->dir);
        int ws = run_child(argv, out, -1, &killed);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            fprintf(stderr, "setup: building the text index failed (see %s.err)\n", out);
            return 1;
        }
    }
    for (int i = 0; i < 6; i++) { /* uninterrupted operations: a starting state and timings */
        state after;
        bool acked, killed;
        op_kind k;
        do k = prepare_op(c, s, &after); while (i < 3 && k != OP_ADD);
        int ws = run_op(c, k, -1, &acked, &killed);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || !acked) {
            fprintf(stderr, "setup: operation %d failed\n", k);
            return 1;
        }
        *s = after;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_live_crash COLPLAID [--trials N] [--corpus C --model M]\n");
        return 2;
    }
    ctx c = {.colplaid = argv[1], .rng = 0x1234567u, .est_ms = {100, 100, 100}};
    int trials = getenv("CP_CRASH_TRIALS") ? atoi(getenv("CP_CRASH_TRIALS")) : 20;
    const char *corpus = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--trials")) trials = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--corpus")) corpus = argv[i + 1];
        else if (!strcmp(argv[i], "--model")) c.model = argv[i + 1];
    }
    if (corpus && !(c.texts = load_texts(corpus, &c.n_texts))) {
        fprintf(stderr, "cannot read %s\n", corpus);
        return 1;
    }
    char *dir = st_tempdir("test_live_crash");
    c.dir = dir;
    state s = {{0}};
    int violations = setup_index(&c, &s), applied = 0, t = 0;
    for (; t < trials && !violations; t++) violations += trial(&c, &s, t, &applied);
    printf("crash test (%s): %d trials, %d violations; %d killed while running (%d of them "
           "after acknowledging, %d committed but not yet acknowledged: found whole), %d "
           "finished first; mean op ms add %.0f delete %.0f compact %.0f\n",
           c.texts ? "text" : "synthetic embeddings", t, violations, g_killed,
           g_acked_before_kill, applied, t - g_killed, c.est_ms[0], c.est_ms[1], c.est_ms[2]);
    CP_CHECK_INT(violations, 0);
    if (!cp_test_failures) st_rm_rf(dir);
    else fprintf(stderr, "kept %s for inspection\n", dir);
    free(dir);
    free((char *)c.index);
    free(c.codec.centroids);
    for (size_t i = 0; i < c.n_texts; i++) free(c.texts[i]);
    free(c.texts);
    return CP_TEST_RESULT();
}
