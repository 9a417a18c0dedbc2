// The spin-wait hint for Strata's thread pool, which Swift has no way to express. Header only:
// inlined into the Swift caller.
#ifndef STRATA_SPIN_H
#define STRATA_SPIN_H

/// Tells the CPU the caller is polling a flag: x86 `pause`, ARM `yield`, nothing elsewhere. It
/// leaves the core's shared resources to a sibling hardware thread and saves power while waiting.
static inline void strata_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

#endif
