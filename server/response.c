/* Response bodies and the error responses shared by every route: see response.h. */
#include "response.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cp_response_set_body(cp_response *resp, int status, cp_sb *sb, const char *content_type)
{
    if (sb->too_big) {
        size_t limit = sb->limit;
        cp_sb_free(sb);
        cp_response_error(resp, 422, "RESPONSE_TOO_LARGE",
                          "the response would be larger than %zu bytes (--max-response-bytes): "
                          "ask for fewer queries, a smaller k, or leave out include \"text\"",
                          limit);
        return;
    }
    resp->body = cp_sb_take(sb, &resp->len);
    resp->status = status;
    resp->content_type = content_type;
    if (!resp->body) {
        static const char oom[] =
            "{\"error\": {\"code\": \"OUT_OF_MEMORY\", \"message\": \"out of memory\"}}";
        resp->body = strdup(oom);
        resp->len = resp->body ? strlen(oom) : 0;
        resp->status = 503;
        resp->error_code = "OUT_OF_MEMORY";
    }
}

void cp_response_error(cp_response *resp, int status, const char *code, const char *fmt, ...)
{
    char msg[CP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cp_sb sb = {0};
    cp_sb_append(&sb, "{\"error\": {\"code\": ");
    cp_sb_json_string(&sb, code);
    cp_sb_append(&sb, ", \"message\": ");
    cp_sb_json_string(&sb, msg);
    cp_sb_append(&sb, "}}");
    free(resp->body);
    resp->body = NULL;
    cp_response_set_body(resp, status, &sb, "application/json");
    resp->error_code = code;
}

void cp_response_from_http_error(cp_response *resp, const cp_http_error *e)
{
    cp_response_error(resp, e->status, e->code, "%s", e->message);
}

static int status_for(cp_status st)
{
    switch (st) {
    case CP_EINVAL:
        return 400;
    case CP_ENOTFOUND:
        return 404;
    case CP_EDIM:
        return 422;
    case CP_EUNSUPPORTED:
        return 422;
    case CP_EEXISTS:
        return 409;
    case CP_EBUSY:
        return 503;
    case CP_EREADONLY:
    case CP_EMODEL:
        return 409;
    case CP_ENOSPC:
        return 507;
    case CP_ENOMEM:
        return 503;
    default:
        return 500;
    }
}

void cp_response_from_status(cp_response *resp, const cp_error *err)
{
    cp_response_error(resp, status_for(err->code), cp_status_name(err->code), "%s",
                      err->message[0] ? err->message : "the request failed");
}

double cp_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
