/*
 * libFuzzer target for the GloVe JSON reader of `colplaid model convert`
 * (encoder/static_convert.c): arbitrary bytes are written to a file and converted into a
 * scratch model directory. Any outcome but a crash, a sanitizer report or a leak is fine;
 * a successful conversion must leave a vocab.txt whose line count matches the config.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colplaid/encoder.h"

static char in_path[256], out_dir[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!in_path[0]) {
        snprintf(in_path, sizeof in_path, "/tmp/cp_fuzz_glove_%d.json", (int)getpid());
        snprintf(out_dir, sizeof out_dir, "/tmp/cp_fuzz_glove_%d.model", (int)getpid());
    }
    FILE *f = fopen(in_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    cp_error err;
    /* Unrotated: the rotation reads no input, and building it costs O(dim^3), which an input
     * announcing "dimensions": 4000 would turn into a timeout rather than a finding. */
    cp_static_convert_options o;
    cp_static_convert_options_init(&o);
    o.rotate = false;
    if (cp_static_model_convert_opts(in_path, out_dir, &o, &err) == CP_OK) {
        char path[512];
        snprintf(path, sizeof path, "%s/vocab.txt", out_dir);
        f = fopen(path, "rb");
        if (!f) abort();
        fclose(f);
    } else if (!err.message[0]) {
        abort(); /* every failure must explain itself */
    }
    return 0;
}
