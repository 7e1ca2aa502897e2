/*
 * A response as the handlers build it, and the error bodies every route answers with
 * ({"error": {"code", "message"}}, docs/http-api.md). http.c turns a cp_response into an
 * HTTP response; handlers.c, explain.c and page.c fill them.
 */
#ifndef CP_SERVER_RESPONSE_H
#define CP_SERVER_RESPONSE_H

#include "colplaid/error.h"
#include "request.h"
#include "strbuf.h"

typedef struct cp_response {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
    const char *error_code; /* for the log line; NULL on success */
    int retry_after;        /* seconds, 0 = no header */
    const char *allow;      /* Allow header for 405 */
} cp_response;

/* Take sb's text as the body; a buffer that ran out of memory becomes a 503 OUT_OF_MEMORY
 * error instead. */
void cp_response_set_body(cp_response *resp, int status, cp_sb *sb, const char *content_type);

/* Fill resp with the JSON error body (replacing any body it had). */
void cp_response_error(cp_response *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A request the parser refused (request.h). */
void cp_response_from_http_error(cp_response *resp, const cp_http_error *e);
/* An engine error: status chosen from err->code (CP_EINVAL 400, CP_ENOTFOUND 404, ...). */
void cp_response_from_status(cp_response *resp, const cp_error *err);

/* Seconds on the monotonic clock, for uptimes and the timing_ms of responses. */
double cp_now_seconds(void);

#endif
