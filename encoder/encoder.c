/* Encoder dispatch: see colplaid_encoder.h (filled in by the encoder work). */
#include "encoder_internal.h"
