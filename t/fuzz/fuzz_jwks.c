/*
 * ag_jwks_parse: a JWKS document (agentgov_jwt_jwks files, the operator's, or
 * an identity provider's). A document that parses is also put in a trust set
 * and used to verify fixed tokens signed by the fixture's keys, so that the
 * keys the fuzzer built are used for verification, not only parsed.
 *
 * Oracle: a token verifies only when the document holds its signer's public
 * key (with the x, or n, that the fixture's JWK has).
 */

#include "fuzz.h"


#define AG_FUZZ_NTOKENS  6


typedef struct {
    char        *tok;
    const char  *pub;       /* a public member that only its key has */
    char        *pubval;
} ag_fuzz_token_t;


static ag_fuzz_token_t  ag_fuzz_tokens[AG_FUZZ_NTOKENS];


static void
ag_fuzz_mint(ag_fuzz_token_t *t, EVP_PKEY *key, const char *hdr,
    const char *pubname)
{
    static const char  payload[] =
        "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":\"" AG_FUZZ_AUD "\","
        "\"sub\":\"fuzz\",\"exp\":1750000300}";
    json_t  *jwk;

    t->tok = ag_fuzz_jws(key, hdr, strlen(hdr), payload, sizeof(payload) - 1,
                         0);
    jwk = ag_jwk_public(key, NULL);
    if (jwk == NULL) {
        ag_fuzz_fail("cannot make a JWK");
    }
    t->pub = pubname;
    t->pubval = strdup(json_string_value(json_object_get(jwk, pubname)));
    json_decref(jwk);
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const ag_fuzz_jwt_fx_t  *fx = ag_fuzz_jwt_fixture();

    (void) argc;
    (void) argv;

    ag_fuzz_mint(&ag_fuzz_tokens[0], fx->ec1,
                 "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", "x");
    ag_fuzz_mint(&ag_fuzz_tokens[1], fx->ec1, "{\"alg\":\"ES256\"}", "x");
    ag_fuzz_mint(&ag_fuzz_tokens[2], fx->ed1,
                 "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", "x");
    ag_fuzz_mint(&ag_fuzz_tokens[3], fx->ed1, "{\"alg\":\"EdDSA\"}", "x");
    ag_fuzz_mint(&ag_fuzz_tokens[4], fx->rsa1,
                 "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "n");
    ag_fuzz_mint(&ag_fuzz_tokens[5], fx->other, "{\"alg\":\"ES256\"}", "x");
    return 0;
}


/* base64url s decoded into buf, less leading zero bytes (an RSA modulus
   may be written with them); the length, or -1. */
static long
ag_fuzz_unsigned(const char *s, unsigned char *buf, size_t cap,
    const unsigned char **start)
{
    long  n;

    n = ag_b64url_decode(s, strlen(s), buf, cap);
    *start = buf;
    while (n > 0 && **start == 0) {
        (*start)++;
        n--;
    }
    return n;
}


/* Whether some key of the document has member name equal to value (as a
   number). */
static int
ag_fuzz_has_key(json_t *doc, const char *name, const char *value)
{
    long                  n, m;
    size_t                i;
    json_t               *k, *v;
    unsigned char         a[2048], b[2048];
    const unsigned char  *pa, *pb;

    n = ag_fuzz_unsigned(value, a, sizeof(a), &pa);
    json_array_foreach(json_object_get(doc, "keys"), i, k) {
        v = json_object_get(k, name);
        if (!json_is_string(v)) {
            continue;
        }
        m = ag_fuzz_unsigned(json_string_value(v), b, sizeof(b), &pb);
        if (m == n && m >= 0 && memcmp(pa, pb, (size_t) m) == 0) {
            return 1;
        }
    }
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               i;
    char              err[256];
    json_t           *claims, *doc;
    ag_jwks_t        *jwks;
    ag_trust_t       *trust;
    ag_jwt_status_t   st;

    err[0] = '\0';
    jwks = ag_jwks_parse((const char *) data, size, err, sizeof(err));
    if (jwks == NULL) {
        ag_fuzz_assert(err[0] != '\0');
        return 0;
    }
    ag_fuzz_assert(ag_jwks_count(jwks) > 0);

    trust = ag_trust_new();
    if (trust == NULL) {
        ag_jwks_free(jwks);
        return 0;
    }
    if (ag_trust_add(trust, AG_FUZZ_ISS, jwks, err, sizeof(err)) != 0) {
        ag_trust_free(trust);
        return 0;
    }

    doc = json_loadb((const char *) data, size, 0, NULL);

    for (i = 0; i < AG_FUZZ_NTOKENS; i++) {
        claims = NULL;
        st = ag_jwt_verify(trust, ag_fuzz_tokens[i].tok,
                           strlen(ag_fuzz_tokens[i].tok), AG_FUZZ_AUD,
                           AG_FUZZ_NOW, &claims, err, sizeof(err));
        if (st == AG_JWT_OK) {
            if (!ag_fuzz_has_key(doc, ag_fuzz_tokens[i].pub,
                                 ag_fuzz_tokens[i].pubval))
            {
                ag_fuzz_fail("token %d verified with a JWKS that lacks its "
                             "key", i);
            }
            ag_fuzz_assert(json_is_object(claims));
        } else {
            ag_fuzz_assert(claims == NULL);
        }
        json_decref(claims);
    }

    json_decref(doc);
    ag_trust_free(trust);
    return 0;
}
