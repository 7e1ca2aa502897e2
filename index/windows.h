/*
 * Windowed documents: settings and hits' passages (index/windows.c; colplaid/window.h). The
 * doc_windows table itself is written, validated and probed by storage.c (storage.h).
 */
#ifndef CP_WINDOWS_H
#define CP_WINDOWS_H

#include "colplaid/index.h"

/* meta "windows" for settings w (malloc'd). */
char *cp_windows_meta_json(const cp_window_options *w, cp_doc_score score);

#endif
