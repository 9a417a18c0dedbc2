// libFuzzer's driver entry point, for the harnesses under Fuzz/ (built only by `make fuzz`).
// SwiftPM links an executable with its entry point renamed (`main` = `<Target>_main`), so a harness
// defines that symbol itself and hands control to libFuzzer here, instead of relying on the `main`
// inside libFuzzer's runtime (which the rename makes unreachable).
#ifndef STRATA_FUZZ_H
#define STRATA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
