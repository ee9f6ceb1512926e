#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

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


int
ag_pread_all(int fd, void *buf, size_t len, off_t off)
{
    char     *p;
    ssize_t   n;
    size_t    done;

    p = buf;
    done = 0;

    while (done < len) {
        n = pread(fd, p + done, len - done, off + (off_t) done);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }

        if (n == 0) {
            errno = EIO;        /* the file shrank under us */
            return -1;
        }

        done += (size_t) n;
    }

    return 0;
}


static int
ag_digits(const char *s, int n)
{
    int  i, v;

    for (i = 0, v = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    return v;
}


/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar; the
   year is taken to start in March, so the leap day comes last. */

static int64_t
ag_days_from_civil(int64_t y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


int
ag_rfc3339_us(const char *s, size_t len, int flags, int64_t *us)
{
    static const int  mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                  31 };
    int      y, mo, d, h, mi, se, oh, om, leap;
    size_t   i, nfrac;
    int64_t  frac, off;

    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't')
        || s[13] != ':' || s[16] != ':')
    {
        return -1;
    }

    y = ag_digits(s, 4);
    mo = ag_digits(s + 5, 2);
    d = ag_digits(s + 8, 2);
    h = ag_digits(s + 11, 2);
    mi = ag_digits(s + 14, 2);
    se = ag_digits(s + 17, 2);

    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0
        || mi > 59 || se < 0 || se > 60)
    {
        return -1;
    }

    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) {
        return -1;
    }

    frac = 0;
    nfrac = 0;
    i = 19;

    if (s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (nfrac < 6) {
                frac = frac * 10 + (s[i] - '0');
            }
            nfrac++;
        }

        if (nfrac == 0 || (nfrac > 9 && (flags & AG_TIME_FRAC9))) {
            return -1;
        }

        for ( /* void */ ; nfrac < 6; nfrac++) {
            frac *= 10;
        }
    }

    off = 0;

    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        /* UTC */

    } else if ((flags & AG_TIME_OFFSET) && i + 6 == len
               && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':'
               && (oh = ag_digits(s + i + 1, 2)) >= 0 && oh <= 23
               && (om = ag_digits(s + i + 4, 2)) >= 0 && om <= 59)
    {
        off = (oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1);

    } else {
        return -1;
    }

    *us = (ag_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60
           + (se > 59 ? 59 : se) - off) * 1000000 + frac;

    return 0;
}


size_t
ag_utf8_len(const unsigned char *s, size_t len)
{
    size_t    n, i;
    uint32_t  c, min;

    if (len == 0) {
        return 0;
    }

    if (s[0] < 0x80) {
        return 1;
    }

    if ((s[0] & 0xe0) == 0xc0) {
        n = 2; c = s[0] & 0x1f; min = 0x80;

    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3; c = s[0] & 0x0f; min = 0x800;

    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4; c = s[0] & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (s[i] & 0x3f);
    }

    /* no overlong forms, surrogates or code points past U+10FFFF */
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }

    return n;
}


int
ag_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


void
ag_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char  digits[] = "0123456789abcdef";

    size_t  i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
}


int
ag_digest_field(EVP_MD_CTX *c, const char *p, size_t len)
{
    unsigned char  n[8];
    size_t         i;

    for (i = 0; i < 8; i++) {
        n[i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
    }

    return EVP_DigestUpdate(c, n, sizeof(n)) == 1
           && (len == 0 || EVP_DigestUpdate(c, p, len) == 1);
}
