/*
 * Long documents as windows (docs/index-format.md "Windows", docs/cli.md `index build
 * --window`).
 *
 * A windowed index encodes a document longer than one window as overlapping windows of
 * `window` model tokens, one every `stride` tokens, the last one ending at the document's
 * end. Each window is encoded late-chunking style: the model sees the window with as much of
 * its neighbours' text around it as fits the model's position limit, and only the window's
 * own token vectors are kept. The windows' vectors are stored one after the other as the
 * token rows of ONE document, so ids, deletes and upserts stay document-level; the table
 * below records which rows and which characters each window covers.
 *
 * This header only holds the shared record; the encoder (colplaid/encoder.h) makes windows
 * and the index (colplaid/index.h) stores them and scores them.
 */
#ifndef COLPLAID_WINDOW_H
#define COLPLAID_WINDOW_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One window of a document: its token rows [tok_start, tok_end) among the document's stored
 * rows (windows tile the rows: window i + 1 starts where window i ends; a window may own no
 * row), and the characters [char_start, char_end) of the document's text it covers, counted
 * in Unicode code points (not bytes) from the start of the text. */
typedef struct cp_window {
    int32_t tok_start, tok_end;
    int32_t char_start, char_end;
} cp_window;

/* Window settings of an index or a model: window 0 means "not windowed". */
typedef struct cp_window_options {
    int window; /* tokens per window, >= 1 */
    int stride; /* tokens between window starts, 1..window */
} cp_window_options;

#ifdef __cplusplus
}
#endif
#endif
