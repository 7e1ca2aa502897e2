/*
 * libFuzzer target for the safetensors reader (encoder/safetensors.c): any bytes are
 * parsed as a file; on success every tensor must lie inside the buffer with the size its
 * shape implies, and every F32/F16/BF16 tensor is converted (ASan catches any read
 * outside the buffer). Seeds: tests/fuzz/corpus/safetensors.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that a read one byte past the end is caught. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    cp_safetensors *st = NULL;
    cp_error err = {0};
    if (cp_safetensors_parse(buf, size, &st, &err) == CP_OK) {
        for (size_t i = 0; i < st->n_tensors; i++) {
            const cp_st_tensor *t = &st->tensors[i];
            if (t->data < buf || t->data + t->nbytes > buf + size) abort();
            if (t->dtype != CP_ST_F32 && t->dtype != CP_ST_F16 && t->dtype != CP_ST_BF16)
                continue;
            if (t->count > (1 << 20)) continue; /* bounded by size anyway; keep runs fast */
            float *out = malloc(sizeof(float) * (size_t)(t->count ? t->count : 1));
            if (out && cp_st_tensor_to_f32(t, out, &err) != CP_OK) abort();
            free(out);
        }
        cp_safetensors_close(st);
    } else if (!err.message[0]) {
        abort(); /* every refusal must say why */
    }
    free(buf);
    return 0;
}
