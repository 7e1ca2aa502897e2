/*
 * Progress for long jobs: on a terminal, a bar with rate and ETA redrawn in place; when
 * the stream is not a terminal, one plain line every few seconds (logs stay readable).
 *
 * Thread safety: one cp_progress belongs to one thread; cp_progress_add() may be called
 * from several threads (it is atomic), drawing happens in the caller of cp_progress_add
 * that crosses a redraw deadline.
 */
#ifndef CP_PROGRESS_H
#define CP_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct cp_progress cp_progress;

/* Start reporting to stream (NULL: report nothing; all calls stay valid). total <= 0 means
 * unknown. unit names what is counted ("docs", "tokens"). Returns NULL only when stream is
 * NULL or memory is short; every function accepts NULL. */
cp_progress *cp_progress_start(FILE *stream, const char *label, int64_t total, const char *unit);
void cp_progress_set(cp_progress *p, int64_t done);
void cp_progress_add(cp_progress *p, int64_t delta);
/* Draw the final state, end the line and free p. */
void cp_progress_finish(cp_progress *p);

#endif
