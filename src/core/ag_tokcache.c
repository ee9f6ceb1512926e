#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ag_tokcache.h"


typedef struct {
    char        *tok;
    size_t       len;
    uint64_t     hash;
    json_t      *claims;
    int64_t      not_before;
    int64_t      not_after;
    uint64_t     used;          /* for replacement within a set */
} ag_tokcache_entry_t;


struct ag_tokcache_s {
    ag_tokcache_entry_t  *entries;
    size_t                nsets;    /* a power of two; 2 entries per set */
    uint64_t              seed;     /* random: collisions cannot be aimed */
    uint64_t              clock;
};


ag_tokcache_t *
ag_tokcache_new(size_t nslots)
{
    size_t          nsets;
    ag_tokcache_t  *c;

    nsets = 1;
    while (nsets * 2 < nslots) {
        nsets <<= 1;
    }

    c = calloc(1, sizeof(ag_tokcache_t));
    if (c == NULL) {
        return NULL;
    }

    c->entries = calloc(nsets * 2, sizeof(ag_tokcache_entry_t));
    if (c->entries == NULL
        || RAND_bytes((unsigned char *) &c->seed, sizeof(c->seed)) != 1)
    {
        free(c->entries);
        free(c);
        return NULL;
    }

    c->nsets = nsets;

    return c;
}


static void
ag_tokcache_clear(ag_tokcache_entry_t *e)
{
    free(e->tok);
    json_decref(e->claims);
    memset(e, 0, sizeof(ag_tokcache_entry_t));
}


void
ag_tokcache_free(ag_tokcache_t *c)
{
    size_t  i;

    if (c == NULL) {
        return;
    }

    for (i = 0; i < c->nsets * 2; i++) {
        ag_tokcache_clear(&c->entries[i]);
    }

    free(c->entries);
    free(c);
}


/*
 * Seeded, eight bytes at a time: tokens are hundreds of bytes and looked up
 * on every call. A collision only costs a miss (entries are compared whole),
 * and the seed keeps an agent from aiming for one.
 */
static uint64_t
ag_tokcache_hash(const ag_tokcache_t *c, const char *tok, size_t len)
{
    size_t    i;
    uint64_t  h, w;

    h = 0x9e3779b97f4a7c15ULL ^ c->seed ^ (uint64_t) len;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, tok + i, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }

    w = 0;
    if (len > i) {
        memcpy(&w, tok + i, len - i);
    }
    h = (h ^ w) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;

    return h;
}


static ag_tokcache_entry_t *
ag_tokcache_find(ag_tokcache_t *c, const char *tok, size_t len, uint64_t h)
{
    size_t                i;
    ag_tokcache_entry_t  *set;

    set = &c->entries[(h & (c->nsets - 1)) * 2];

    /*
     * Bytes are compared only once the seeded 64-bit hash matched: an agent
     * cannot choose which cached token its bytes are compared with, so the
     * comparison need not take constant time (it runs on every call).
     */
    for (i = 0; i < 2; i++) {
        if (set[i].tok != NULL && set[i].hash == h && set[i].len == len
            && memcmp(set[i].tok, tok, len) == 0)
        {
            return &set[i];
        }
    }

    return NULL;
}


json_t *
ag_tokcache_get(ag_tokcache_t *c, const char *tok, size_t len, int64_t now)
{
    ag_tokcache_entry_t  *e;

    e = ag_tokcache_find(c, tok, len, ag_tokcache_hash(c, tok, len));

    if (e == NULL) {
        return NULL;
    }

    if (now < e->not_before || now > e->not_after) {
        if (now > e->not_after) {
            ag_tokcache_clear(e);
        }

        return NULL;
    }

    e->used = ++c->clock;

    return e->claims;
}


void
ag_tokcache_put(ag_tokcache_t *c, const char *tok, size_t len, json_t *claims,
    int64_t not_before, int64_t not_after)
{
    char                 *copy;
    uint64_t              h;
    ag_tokcache_entry_t  *e, *set;

    h = ag_tokcache_hash(c, tok, len);

    e = ag_tokcache_find(c, tok, len, h);

    if (e == NULL) {
        set = &c->entries[(h & (c->nsets - 1)) * 2];
        e = (set[0].used <= set[1].used) ? &set[0] : &set[1];
    }

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return;
    }

    memcpy(copy, tok, len);

    ag_tokcache_clear(e);

    e->tok = copy;
    e->len = len;
    e->hash = h;
    e->claims = json_incref(claims);
    e->not_before = not_before;
    e->not_after = not_after;
    e->used = ++c->clock;
}


static int64_t
ag_tokcache_claim_time(json_t *claims, const char *name, int64_t dflt)
{
    json_t  *v;

    v = json_object_get(claims, name);

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);

        return i < INT64_MIN / 2 ? INT64_MIN / 2 : (int64_t) i;
    }

    if (json_is_real(v)) {
        double d = json_real_value(v);

        if (d > 0 && d < 9.2e18) {
            return (int64_t) d;
        }
    }

    return dflt;
}


void
ag_tokcache_window(json_t *claims, int64_t skew, int64_t *not_before,
    int64_t *not_after)
{
    int64_t  nbf, iat, exp;

    nbf = ag_tokcache_claim_time(claims, "nbf", INT64_MIN / 2);
    iat = ag_tokcache_claim_time(claims, "iat", INT64_MIN / 2);
    exp = ag_tokcache_claim_time(claims, "exp", INT64_MIN / 2);

    nbf = nbf > iat ? nbf : iat;

    /* saturate: claims are the issuer's numbers, not ours to overflow on */
    *not_before = nbf > INT64_MIN / 2 ? nbf - skew : INT64_MIN / 2;
    *not_after = exp < INT64_MAX - skew ? exp + skew : INT64_MAX;
}
