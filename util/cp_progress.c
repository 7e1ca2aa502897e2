/* Progress bar / periodic progress lines: see cp_progress.h. */
#include "cp_progress.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cp_progress {
    FILE *stream;
    char label[48];
    char unit[16];
    int64_t total;
    _Atomic int64_t done;
    _Atomic double next_draw;
    double started;
    bool tty;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void format_duration(double s, char *buf, size_t size)
{
    if (s < 0 || s > 1e7) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, size, "%02ld:%02ld", t / 60, t % 60);
}

static void draw(cp_progress *p, bool final)
{
    double elapsed = now_seconds() - p->started;
    int64_t done = atomic_load(&p->done);
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[24], spent[24];
    format_duration(elapsed, spent, sizeof spent);
    if (p->total > 0 && rate > 0)
        format_duration((double)(p->total - done) / rate, eta, sizeof eta);
    else
        snprintf(eta, sizeof eta, "--:--");
    if (p->tty) {
        char bar[31];
        int width = 30, filled = 0;
        if (p->total > 0) filled = (int)((double)done / (double)p->total * width);
        if (filled > width) filled = width;
        memset(bar, '#', (size_t)filled);
        memset(bar + filled, '.', (size_t)(width - filled));
        bar[width] = '\0';
        if (p->total > 0)
            fprintf(p->stream, "\r%s [%s] %lld/%lld %s  %.0f %s/s  %s  ETA %s\033[K", p->label, bar,
                    (long long)done, (long long)p->total, p->unit, rate, p->unit, spent, eta);
        else
            fprintf(p->stream, "\r%s %lld %s  %.0f %s/s  %s\033[K", p->label, (long long)done,
                    p->unit, rate, p->unit, spent);
        if (final) fputc('\n', p->stream);
    } else {
        if (p->total > 0)
            fprintf(p->stream, "%s: %lld/%lld %s (%.1f%%), %.0f %s/s, elapsed %s, ETA %s\n",
                    p->label, (long long)done, (long long)p->total, p->unit,
                    100.0 * (double)done / (double)p->total, rate, p->unit, spent, eta);
        else
            fprintf(p->stream, "%s: %lld %s, %.0f %s/s, elapsed %s\n", p->label, (long long)done,
                    p->unit, rate, p->unit, spent);
    }
    fflush(p->stream);
}

cp_progress *cp_progress_start(FILE *stream, const char *label, int64_t total, const char *unit)
{
    if (!stream) return NULL;
    cp_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->stream = stream;
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->tty = isatty(fileno(stream));
    p->started = now_seconds();
    atomic_store(&p->next_draw, p->started + (p->tty ? 0.2 : 5.0));
    return p;
}

static void maybe_draw(cp_progress *p)
{
    double t = now_seconds();
    double deadline = atomic_load(&p->next_draw);
    if (t < deadline) return;
    if (!atomic_compare_exchange_strong(&p->next_draw, &deadline, t + (p->tty ? 0.2 : 5.0))) return;
    draw(p, false);
}

void cp_progress_set(cp_progress *p, int64_t done)
{
    if (!p) return;
    atomic_store(&p->done, done);
    maybe_draw(p);
}

void cp_progress_add(cp_progress *p, int64_t delta)
{
    if (!p) return;
    atomic_fetch_add(&p->done, delta);
    maybe_draw(p);
}

void cp_progress_finish(cp_progress *p)
{
    if (!p) return;
    draw(p, true);
    free(p);
}
