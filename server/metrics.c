/*
 * Prometheus metrics: see metrics.h. Status codes are counted in a small fixed table (the
 * statuses this server can answer); latency histograms use fixed buckets from 0.5 ms to
 * 10 s, which cover a cached health check and a large exact search alike.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strbuf.h"

static const int statuses[] = {200, 400, 401, 403, 404, 405, 413, 422, 429, 500, 501, 503};
enum { N_STATUS = sizeof statuses / sizeof statuses[0] };
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1.0,   2.5,  5.0,  10.0};
enum { N_BUCKET = sizeof buckets / sizeof buckets[0] };
static const char *const stages[] = {"encode", "centroid_scores", "candidates", "stage2",
                                     "stage3", "stage4", "total"};
enum { N_STAGE = sizeof stages / sizeof stages[0] };

static const char *const route_labels[CP_ROUTE_COUNT] = {
    [CP_ROUTE_HEALTH] = "/health",
    [CP_ROUTE_METRICS] = "/metrics",
    [CP_ROUTE_OPENAPI] = "/openapi.json",
    [CP_ROUTE_LIST_INDEXES] = "/v1/indexes",
    [CP_ROUTE_GET_INDEX] = "/v1/indexes/{name}",
    [CP_ROUTE_SEARCH] = "/v1/indexes/{name}/search",
    [CP_ROUTE_GET_DOCUMENT] = "/v1/indexes/{name}/documents/{id}",
    [CP_ROUTE_ENCODE] = "/v1/encode",
    [CP_ROUTE_RERANK] = "/v1/rerank",
    [CP_ROUTE_PAGE] = "/",
    [CP_ROUTE_EXPLAIN] = "/v1/indexes/{name}/explain",
    [CP_ROUTE_UPSERT] = "POST /v1/indexes/{name}/documents",
    [CP_ROUTE_DELETE_DOCUMENTS] = "DELETE /v1/indexes/{name}/documents",
    [CP_ROUTE_COMPACT] = "/v1/indexes/{name}/compact",
    [CP_ROUTE_CREATE_INDEX] = "POST /v1/indexes",
    [CP_ROUTE_DROP_INDEX] = "DELETE /v1/indexes/{name}",
    [CP_ROUTE_OTHER] = "other",
};

const char *cp_route_label(cp_route r)
{
    return (unsigned)r < CP_ROUTE_COUNT ? route_labels[r] : "other";
}

struct cp_metrics {
    pthread_mutex_t mu;
    uint64_t count[CP_ROUTE_COUNT][N_STATUS + 1]; /* last column: any other status */
    uint64_t hist[CP_ROUTE_COUNT][N_BUCKET];      /* non-cumulative bucket counts */
    uint64_t hist_n[CP_ROUTE_COUNT];
    double hist_sum[CP_ROUTE_COUNT];
    double stage_sum[N_STAGE];
    uint64_t stage_n;
    uint64_t candidates_sum;
};

cp_metrics *cp_metrics_new(void)
{
    cp_metrics *m = calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void cp_metrics_free(cp_metrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void cp_metrics_request(cp_metrics *m, cp_route route, int status, double seconds)
{
    if ((unsigned)route >= CP_ROUTE_COUNT) route = CP_ROUTE_OTHER;
    int s = N_STATUS;
    for (int i = 0; i < N_STATUS; i++)
        if (statuses[i] == status) s = i;
    int b = 0;
    while (b < N_BUCKET && seconds > buckets[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->count[route][s]++;
    if (b < N_BUCKET) m->hist[route][b]++;
    m->hist_n[route]++;
    m->hist_sum[route] += seconds;
    pthread_mutex_unlock(&m->mu);
}

void cp_metrics_search_timing(cp_metrics *m, const cp_search_timing *t, double encode_ms)
{
    double v[N_STAGE] = {encode_ms,  t->centroid_scores, t->candidates, t->stage2,
                         t->stage3, t->stage4,          t->total};
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < N_STAGE; i++) m->stage_sum[i] += v[i] / 1000.0;
    m->stage_n++;
    m->candidates_sum += (uint64_t)(t->n_candidates > 0 ? t->n_candidates : 0);
    pthread_mutex_unlock(&m->mu);
}

static void render_requests(const cp_metrics *m, cp_sb *sb)
{
    cp_sb_append(sb, "# HELP colplaid_http_requests_total HTTP requests answered, by route and "
                     "status.\n# TYPE colplaid_http_requests_total counter\n");
    for (int r = 0; r < CP_ROUTE_COUNT; r++)
        for (int s = 0; s <= N_STATUS; s++)
            if (m->count[r][s]) {
                char label[16];
                if (s == N_STATUS) snprintf(label, sizeof label, "other");
                else snprintf(label, sizeof label, "%d", statuses[s]);
                cp_sb_printf(sb, "colplaid_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                             route_labels[r], label, (unsigned long long)m->count[r][s]);
            }
}

static void render_latency(const cp_metrics *m, cp_sb *sb)
{
    cp_sb_append(sb, "# HELP colplaid_http_request_duration_seconds Time from the request's "
                     "first byte to the response, by route.\n"
                     "# TYPE colplaid_http_request_duration_seconds histogram\n");
    for (int r = 0; r < CP_ROUTE_COUNT; r++) {
        if (!m->hist_n[r]) continue;
        uint64_t cum = 0;
        for (int b = 0; b < N_BUCKET; b++) {
            cum += m->hist[r][b];
            cp_sb_printf(sb,
                         "colplaid_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                         "%llu\n",
                         route_labels[r], buckets[b], (unsigned long long)cum);
        }
        cp_sb_printf(sb,
                     "colplaid_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                     "%llu\n",
                     route_labels[r], (unsigned long long)m->hist_n[r]);
        cp_sb_printf(sb, "colplaid_http_request_duration_seconds_sum{route=\"%s\"} %.9g\n",
                     route_labels[r], m->hist_sum[r]);
        cp_sb_printf(sb, "colplaid_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                     route_labels[r], (unsigned long long)m->hist_n[r]);
    }
}

static void render_stages(const cp_metrics *m, cp_sb *sb)
{
    cp_sb_append(sb, "# HELP colplaid_search_stage_seconds Time spent per search stage, summed "
                     "over queries.\n# TYPE colplaid_search_stage_seconds summary\n");
    for (int i = 0; i < N_STAGE; i++) {
        cp_sb_printf(sb, "colplaid_search_stage_seconds_sum{stage=\"%s\"} %.9g\n", stages[i],
                     m->stage_sum[i]);
        cp_sb_printf(sb, "colplaid_search_stage_seconds_count{stage=\"%s\"} %llu\n", stages[i],
                     (unsigned long long)m->stage_n);
    }
    cp_sb_printf(sb, "# HELP colplaid_search_candidates_total Documents after stage 1, summed.\n"
                     "# TYPE colplaid_search_candidates_total counter\n"
                     "colplaid_search_candidates_total %llu\n",
                 (unsigned long long)m->candidates_sum);
}

static void render_gauges(const cp_metrics_gauges *g, cp_sb *sb)
{
    cp_sb_printf(sb,
                 "# HELP colplaid_http_in_flight Requests received and not yet answered.\n"
                 "# TYPE colplaid_http_in_flight gauge\ncolplaid_http_in_flight %lld\n"
                 "# HELP colplaid_queue_depth Requests waiting for a worker.\n"
                 "# TYPE colplaid_queue_depth gauge\ncolplaid_queue_depth %lld\n"
                 "# HELP colplaid_queue_capacity Requests that may wait before 503.\n"
                 "# TYPE colplaid_queue_capacity gauge\ncolplaid_queue_capacity %lld\n"
                 "# HELP colplaid_workers Worker threads.\n"
                 "# TYPE colplaid_workers gauge\ncolplaid_workers %lld\n"
                 "# HELP colplaid_process_resident_memory_bytes Resident set size.\n"
                 "# TYPE colplaid_process_resident_memory_bytes gauge\n"
                 "colplaid_process_resident_memory_bytes %lld\n"
                 "# HELP colplaid_uptime_seconds Seconds since the server started.\n"
                 "# TYPE colplaid_uptime_seconds gauge\ncolplaid_uptime_seconds %.3f\n",
                 (long long)g->in_flight, (long long)g->queue_depth, (long long)g->queue_capacity,
                 (long long)g->workers, (long long)g->rss_bytes, g->uptime_seconds);
}

char *cp_metrics_render(cp_metrics *m, const cp_metrics_gauges *g)
{
    cp_sb sb = {0};
    pthread_mutex_lock(&m->mu);
    render_requests(m, &sb);
    render_latency(m, &sb);
    render_stages(m, &sb);
    pthread_mutex_unlock(&m->mu);
    render_gauges(g, &sb);
    return cp_sb_take(&sb, NULL);
}

int64_t cp_process_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long long size = 0, rss = 0;
    int n = fscanf(f, "%lld %lld", &size, &rss);
    fclose(f);
    return n == 2 ? (int64_t)rss * sysconf(_SC_PAGESIZE) : 0;
}
