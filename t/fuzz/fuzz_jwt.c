/*
 * ag_jwt_verify on raw token bytes (the Authorization header of an agent or
 * a person), against a fixed trust set: AG_FUZZ_ISS with ES256 "ec1", EdDSA
 * "ed1" and RS256 "rsa1", AG_FUZZ_ISS2 with one ES256 key and no kid. The EC
 * and Ed25519 keys are derived from fixed labels, so seed tokens signed by
 * them (t/fuzz/gen_seeds.c) verify and the claim checks are reached.
 *
 * Oracles: a verified token's claims are an object whose iss is trusted,
 * whose exp is a number not past, and whose aud holds the audience; the
 * token cache never accepts a token at a time the verifier would refuse it;
 * base64url decoding is canonical (decode then encode gives the input back).
 */

#include "fuzz.h"
#include "ag_tokcache.h"


static const ag_fuzz_jwt_fx_t  *ag_fuzz_fx;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    ag_fuzz_fx = ag_fuzz_jwt_fixture();
    return 0;
}


static int
ag_fuzz_aud_holds(json_t *aud)
{
    size_t   i;
    json_t  *e;

    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), AG_FUZZ_AUD) == 0
               && json_string_length(aud) == strlen(AG_FUZZ_AUD);
    }
    json_array_foreach(aud, i, e) {
        if (json_is_string(e) && strcmp(json_string_value(e), AG_FUZZ_AUD) == 0
            && json_string_length(e) == strlen(AG_FUZZ_AUD))
        {
            return 1;
        }
    }
    return 0;
}


static void
ag_fuzz_claims_ok(json_t *claims)
{
    json_t      *iss, *exp;
    const char  *s;

    ag_fuzz_assert(json_is_object(claims));

    iss = json_object_get(claims, "iss");
    ag_fuzz_assert(json_is_string(iss));
    s = json_string_value(iss);
    ag_fuzz_assert((strcmp(s, AG_FUZZ_ISS) == 0
                    && json_string_length(iss) == strlen(AG_FUZZ_ISS))
                   || (strcmp(s, AG_FUZZ_ISS2) == 0
                       && json_string_length(iss) == strlen(AG_FUZZ_ISS2)));

    exp = json_object_get(claims, "exp");
    ag_fuzz_assert(json_is_number(exp));
    ag_fuzz_assert(json_number_value(exp)
                   >= (double) (AG_FUZZ_NOW - AG_FUZZ_SKEW));

    ag_fuzz_assert(ag_fuzz_aud_holds(json_object_get(claims, "aud")));
}


/* A cached token is good at every time the cache hands it out: try the
   edges of its window from the time it was verified on. */
static void
ag_fuzz_cache(const char *tok, size_t len, json_t *claims)
{
    int              i;
    char             err[256];
    json_t          *again;
    int64_t          nb, na, t, times[6];
    ag_tokcache_t   *c;
    ag_jwt_status_t  st;

    ag_tokcache_window(claims, AG_FUZZ_SKEW, &nb, &na);

    c = ag_tokcache_new(4);
    if (c == NULL) {
        return;
    }
    ag_tokcache_put(c, tok, len, claims, nb, na);

    times[0] = AG_FUZZ_NOW;
    times[1] = AG_FUZZ_NOW + 1;
    times[2] = nb;
    times[3] = na - 1;
    times[4] = na;
    times[5] = na + 1;

    for (i = 0; i < 6; i++) {
        t = times[i];
        if (t < AG_FUZZ_NOW || ag_tokcache_get(c, tok, len, t) == NULL) {
            continue;
        }
        again = NULL;
        st = ag_jwt_verify(ag_fuzz_fx->trust, tok, len, AG_FUZZ_AUD, t, &again,
                           err, sizeof(err));
        if (st != AG_JWT_OK) {
            ag_fuzz_fail("the cache accepts a token at %lld (window %lld..%lld)"
                         " that verification refuses: %s",
                         (long long) t, (long long) nb, (long long) na, err);
        }
        json_decref(again);
    }

    ag_tokcache_free(c);
}


static void
ag_fuzz_b64_canonical(const char *s, size_t len)
{
    long            n, m;
    char           *enc;
    unsigned char  *dec;

    dec = malloc(len + 1);
    enc = malloc(len + 2);
    if (dec == NULL || enc == NULL) {
        ag_fuzz_fail("out of memory");
    }

    n = ag_b64url_decode(s, len, dec, len + 1);
    if (n >= 0) {
        m = ag_b64url_encode(dec, (size_t) n, enc, len + 2);
        ag_fuzz_assert(m >= 0 && (size_t) m == len
                       && memcmp(enc, s, len) == 0);
    }

    free(dec);
    free(enc);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             err[256];
    json_t          *claims;
    const char      *tok, *dot;
    ag_jwt_status_t  st;

    tok = (const char *) data;
    claims = (json_t *) 1;
    err[0] = '\0';

    st = ag_jwt_verify(ag_fuzz_fx->trust, tok, size, AG_FUZZ_AUD, AG_FUZZ_NOW,
                       &claims, err, sizeof(err));

    if (ag_fuzz_debug()) {
        fprintf(stderr, "jwt: %s%s%s\n", ag_jwt_status_name(st),
                st == AG_JWT_OK ? "" : ": ", st == AG_JWT_OK ? "" : err);
    }

    ag_fuzz_assert(ag_jwt_status_name(st) != NULL);

    if (st == AG_JWT_OK) {
        ag_fuzz_claims_ok(claims);
        ag_fuzz_cache(tok, size, claims);
        json_decref(claims);
    } else {
        ag_fuzz_assert(claims == NULL);
        ag_fuzz_assert(err[0] != '\0');
    }

    /* the first segment as base64url */
    dot = (size > 0) ? memchr(tok, '.', size) : NULL;
    ag_fuzz_b64_canonical(tok, dot ? (size_t) (dot - tok) : size);

    return 0;
}
