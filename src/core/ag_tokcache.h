/*
 * A cache of verified bearer tokens and their claims, so that a token is
 * verified with asymmetric cryptography once and then recognised by its exact
 * bytes. One cache per process (an nginx worker); not thread-safe.
 *
 * Only what does not change for the cache's life is cached: the signature, the
 * issuer and the audience. Time bounds are checked again on every lookup.
 */

#ifndef AG_TOKCACHE_H
#define AG_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct ag_tokcache_s  ag_tokcache_t;

/* nslots is rounded up to a power of two; entries live in 2-way sets. */
ag_tokcache_t *ag_tokcache_new(size_t nslots);
void ag_tokcache_free(ag_tokcache_t *c);

/*
 * The claims of a token put earlier with the same exact bytes, when `now` is
 * within [not_before, not_after]; else NULL. The reference is borrowed: take
 * your own (json_incref) to keep it past the next put.
 */
json_t *ag_tokcache_get(ag_tokcache_t *c, const char *tok, size_t len,
    int64_t now);

/* Remember a verified token. Takes a new reference on claims. A failed
   allocation only means the token is not cached. */
void ag_tokcache_put(ag_tokcache_t *c, const char *tok, size_t len,
    json_t *claims, int64_t not_before, int64_t not_after);

/* The validity window of verified claims: [max(nbf, iat) - skew, exp + skew]. */
void ag_tokcache_window(json_t *claims, int64_t skew, int64_t *not_before,
    int64_t *not_after);

#endif /* AG_TOKCACHE_H */
