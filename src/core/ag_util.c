#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ag_util.h"


void
ag_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


char *
ag_read_stream(FILE *f, const char *name, size_t max, size_t *len, char *err,
    size_t errlen)
{
    char    *buf, *nbuf;
    size_t   cap, n, r;

    buf = NULL;
    cap = 0;
    n = 0;

    for ( ;; ) {
        if (n == cap) {
            if (cap > max) {
                ag_errf(err, errlen, "\"%s\" is larger than %zu bytes", name,
                        max);
                free(buf);
                return NULL;
            }

            /* grow to at most max + 1, so that a larger file is noticed */
            cap = cap ? cap * 2 : 16384;
            cap = cap > max + 1 ? max + 1 : cap;

            nbuf = realloc(buf, cap + 1);
            if (nbuf == NULL) {
                ag_errf(err, errlen, "out of memory reading \"%s\"", name);
                free(buf);
                return NULL;
            }

            buf = nbuf;
        }

        r = fread(buf + n, 1, cap - n, f);
        n += r;

        if (r == 0) {
            break;
        }
    }

    if (ferror(f)) {
        ag_errf(err, errlen, "cannot read \"%s\": %s", name, strerror(errno));
        free(buf);
        return NULL;
    }

    if (n > max) {
        ag_errf(err, errlen, "\"%s\" is larger than %zu bytes", name, max);
        free(buf);
        return NULL;
    }

    buf[n] = '\0';
    *len = n;

    return buf;
}


char *
ag_read_file(const char *path, size_t max, size_t *len, char *err,
    size_t errlen)
{
    char  *buf;
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        ag_errf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }

    buf = ag_read_stream(f, path, max, len, err, errlen);
    fclose(f);

    return buf;
}
