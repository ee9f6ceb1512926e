/* Small helpers every part of the engine shares. */

#ifndef AG_UTIL_H
#define AG_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* Format an error message for the caller; err may be NULL. */
void ag_errf(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Read a whole stream, or a whole file, of at most max bytes into a malloc'd
 * buffer with a NUL after the data; *len gets the length. name is used in
 * error messages. NULL with err on failure.
 */
char *ag_read_stream(FILE *f, const char *name, size_t max, size_t *len,
    char *err, size_t errlen);
char *ag_read_file(const char *path, size_t max, size_t *len, char *err,
    size_t errlen);

#endif /* AG_UTIL_H */
