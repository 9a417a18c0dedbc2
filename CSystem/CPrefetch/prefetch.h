// A cache prefetch hint for Strata's packed GEMM, which Swift has no way to express. Header only:
// the function is inlined into the Swift caller.
#ifndef STRATA_PREFETCH_H
#define STRATA_PREFETCH_H

/// Asks the CPU to start loading the cache line holding `p` (for reading, kept in all levels).
static inline void strata_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
