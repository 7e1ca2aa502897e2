/*
 * Server metrics in Prometheus text format: request counts by route and status, latency
 * histograms by route, per-stage search timings, in-flight requests and queue depth.
 *
 * Thread safety: every function may be called from any thread (one mutex guards the
 * tables; the hot path takes it once per request, which is negligible next to a search).
 */
#ifndef CP_SERVER_METRICS_H
#define CP_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "colplaid/index.h"

/* Routes, for labelling. CP_ROUTE_OTHER covers unknown paths. */
typedef enum cp_route {
    CP_ROUTE_HEALTH,
    CP_ROUTE_METRICS,
    CP_ROUTE_OPENAPI,
    CP_ROUTE_LIST_INDEXES,
    CP_ROUTE_GET_INDEX,
    CP_ROUTE_SEARCH,
    CP_ROUTE_GET_DOCUMENT,
    CP_ROUTE_ENCODE,
    CP_ROUTE_RERANK,
    CP_ROUTE_PAGE,             /* GET /: the browser search page (page.c) */
    CP_ROUTE_EXPLAIN,          /* POST /v1/indexes/{name}/explain (explain.c) */
    CP_ROUTE_UPSERT,           /* POST /v1/indexes/{name}/documents */
    CP_ROUTE_DELETE_DOCUMENTS, /* DELETE /v1/indexes/{name}/documents */
    CP_ROUTE_COMPACT,          /* POST /v1/indexes/{name}/compact (admin scope) */
    CP_ROUTE_CREATE_INDEX,     /* POST /v1/indexes (admin scope) */
    CP_ROUTE_DROP_INDEX,       /* DELETE /v1/indexes/{name} (admin scope) */
    CP_ROUTE_OTHER,
    CP_ROUTE_COUNT
} cp_route;

/* The route's path template as in the OpenAPI document ("/v1/indexes/{name}/search").
 * The two write routes share a path, so their labels carry the method to keep the
 * Prometheus series apart ("POST /v1/indexes/{name}/documents"). */
const char *cp_route_label(cp_route r);

typedef struct cp_metrics cp_metrics;

cp_metrics *cp_metrics_new(void);
void cp_metrics_free(cp_metrics *m);

void cp_metrics_request(cp_metrics *m, cp_route route, int status, double seconds);
void cp_metrics_search_timing(cp_metrics *m, const cp_search_timing *t, double encode_ms);

/* Append the exposition text to a growing buffer; gauges are passed in by the caller. */
typedef struct cp_metrics_gauges {
    int64_t in_flight;
    int64_t queue_depth;
    int64_t queue_capacity;
    int64_t workers;
    int64_t rss_bytes;
    double uptime_seconds;
} cp_metrics_gauges;

/* malloc'd text; index sizes are appended by the caller. NULL when out of memory. */
char *cp_metrics_render(cp_metrics *m, const cp_metrics_gauges *g);

/* Resident set size of this process, from /proc/self/statm (0 if unknown). */
int64_t cp_process_rss_bytes(void);

#endif
