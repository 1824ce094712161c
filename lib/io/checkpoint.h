/* Checkpoint loading from memory, for the fuzzer (tests/fuzz/fuzz_checkpoint.c):
 * the same validation as cvae_model_load, without a file. */
#ifndef CVAE_CHECKPOINT_H
#define CVAE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

/* A model from a whole checkpoint held in memory (buf[0..len), copied).
 * Messages name the checkpoint '<memory>'. */
cvae_status cvae__model_load_memory(const uint8_t *buf, size_t len, cvae_model **out);

#endif
