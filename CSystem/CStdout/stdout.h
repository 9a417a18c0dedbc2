// The command line's standard output, through C's stdio: the stream Swift's `print` writes to.
// Swift 6 cannot name C's `stdout` (a mutable C global), so the write, the flush and the error
// check that tell a full disk or a closed pipe from success live here. Header only.
#ifndef STRATA_STDOUT_H
#define STRATA_STDOUT_H

#include <errno.h>
#include <stdio.h>

/// Writes `n` bytes to standard output and flushes it (streamed text must show at once).
/// Returns 0, or the errno of the failed write.
static inline int strata_stdout_write(const void *bytes, size_t n) {
    errno = 0;
    if ((n > 0 && fwrite(bytes, 1, n, stdout) != n) || fflush(stdout) != 0) return errno ? errno : EIO;
    return 0;
}

/// Flushes standard output at the end of a command. Returns 0 when everything written to it
/// (`print` included) reached the file; the errno of the failed flush; or -1 when an earlier write
/// failed (stdio drops what it could not write and keeps only the error flag).
static inline int strata_stdout_finish(void) {
    errno = 0;
    if (fflush(stdout) != 0) return errno ? errno : EIO;
    return ferror(stdout) ? -1 : 0;
}

#endif
