/*
 * GET /: the browser search page. It is one self-contained HTML file (server/page.html:
 * markup, CSS and JavaScript, no external CDN or asset) embedded into the binary at build
 * time like the OpenAPI document, so the page always matches the server that serves it.
 * The page only calls the public JSON API (/v1/indexes, search, explain, documents).
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

void cp_handle_page(cp_response *resp)
{
    resp->body = malloc(cp_page_html_len + 1);
    if (!resp->body) {
        cp_response_error(resp, 503, "OUT_OF_MEMORY", "out of memory");
        return;
    }
    memcpy(resp->body, cp_page_html, cp_page_html_len + 1);
    resp->len = cp_page_html_len;
    resp->status = 200;
    resp->content_type = "text/html; charset=utf-8";
}
