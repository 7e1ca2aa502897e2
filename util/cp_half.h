/*
 * IEEE 754 half precision (binary16) to float, the one converter every reader of f16 data
 * uses (.npy '<f2', .pt float16, safetensors F16, static model vectors). Exact for every
 * value: subnormals are renormalised, infinities and NaNs (with their payload) carried over.
 */
#ifndef CP_HALF_H
#define CP_HALF_H

#include <stdint.h>

float cp_half_to_float(uint16_t h);

#endif
