/* Small helpers every part of the engine shares. */

#ifndef AG_UTIL_H
#define AG_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

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

/* Read exactly len bytes at off (EINTR retried; a short file is EIO). 0 or
   -1 with errno. */
int ag_pread_all(int fd, void *buf, size_t len, off_t off);

/*
 * RFC 3339 "2026-11-23T10:00:00Z" with an optional fraction, to microseconds
 * since the epoch (digits past the microsecond dropped; a leap second counts
 * as :59). Flags: AG_TIME_OFFSET accepts a numeric offset ("+02:00") besides
 * Z; AG_TIME_FRAC9 refuses more than nine fraction digits. 0 or -1.
 */
#define AG_TIME_OFFSET   1
#define AG_TIME_FRAC9    2

int ag_rfc3339_us(const char *s, size_t len, int flags, int64_t *us);

/* The value of a hex digit (either case), or -1. */
int ag_hex_digit(int c);

/* len bytes as 2 * len lower-case hex digits (no NUL added). */
void ag_hex_encode(const unsigned char *in, size_t len, char *out);

/*
 * One field of a digest over several: its length (8 bytes, big-endian),
 * then its bytes, so that no two different sequences of fields run
 * together into the same input. 1, or 0 when the digest failed.
 */
struct evp_md_ctx_st;
int ag_digest_field(struct evp_md_ctx_st *c, const char *p, size_t len);

/* The length of the UTF-8 sequence at s (1 to 4), or 0 if it is not a
   valid one. */
size_t ag_utf8_len(const unsigned char *s, size_t len);

#endif /* AG_UTIL_H */
