// The command line's standard output, through C's stdio: the stream Swift's `print` writes to.
// Swift 6 cannot name C's `stdout` (a mutable C global), so the write, the flush and the error
// check that tell a full disk or a closed pipe from success live here. Header only.
#ifndef STRATA_STDOUT_H
#define STRATA_STDOUT_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

/// Writes `n` bytes to standard output and flushes it (streamed text must show at once).
/// Returns 0, or the errno of the failed write.
static inline int strata_stdout_write(const void *bytes, size_t n) {
    errno = 0;
    if ((n > 0 && fwrite(bytes, 1, n, stdout) != n) || fflush(stdout) != 0) return errno ? errno : EIO;
    return 0;
}

/// Flushes standard output at the end of a command. Returns 0 when everything written to it
/// (`print` included) reached the file; the errno of the failed flush; EPIPE when an earlier
/// write failed and the output is a pipe nobody reads any more; or -1 for another earlier
/// failure (stdio drops what it could not write and keeps only the error flag, not the errno).
static inline int strata_stdout_finish(void) {
    errno = 0;
    if (fflush(stdout) != 0) return errno ? errno : EIO;
    if (!ferror(stdout)) return 0;
    struct pollfd p = {STDOUT_FILENO, POLLOUT, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) return EPIPE;
    return -1;
}

#endif
