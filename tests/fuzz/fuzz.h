/* Shared by the libFuzzer harnesses (fuzz_*.c) and the replay driver
 * (replay_main.c), which runs them over tests/fuzz/corpus/ in ctest. */
#ifndef CVAE_FUZZ_H
#define CVAE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The libFuzzer entry point each harness defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise of the library (not a bad input): abort, so that libFuzzer
 * saves the input and the replay test fails. */
#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
