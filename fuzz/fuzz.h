/*
 * What every fuzz driver of fuzz/ shares: the entry point libFuzzer (or fuzz/replay.c) calls with each input, and
 * CHECK, which stops the run on an input that breaks a property (libFuzzer keeps that input as a crash).
 */
#ifndef TOLLGATE_FUZZ_H
#define TOLLGATE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c))                                                                                                      \
            abort();                                                                                                   \
    } while (0)

#endif
