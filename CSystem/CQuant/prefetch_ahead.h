// The prefetch the panel walkers issue as they start each record (quant.c's unpacking walkers and
// qdot.c's integer kernels): the cache lines `STRATA_PREFETCH_AHEAD` bytes ahead, which past a
// panel's end are the next panel's (panels follow each other in memory), so that memory streams
// while the vector units work. Only a hint: results are unchanged, and a prefetch past the end of
// the buffer does not fault. On the Intel Xeon of BENCHMARKS.md sitting 9 it made batch-1 decode
// on the exact path 1.3–1.6× faster (the hardware prefetcher alone left the unpacking waiting on
// memory).
#ifndef STRATA_PREFETCH_AHEAD_H
#define STRATA_PREFETCH_AHEAD_H
#include <stddef.h>
#include <stdint.h>

#define STRATA_PREFETCH_AHEAD 4096

static inline __attribute__((always_inline)) void strata_prefetch_ahead(const uint8_t *record, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(record + STRATA_PREFETCH_AHEAD + o, 0, 3);
}
#endif
