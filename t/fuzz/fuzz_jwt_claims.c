/*
 * ag_jwt_verify with the header and payload JSON under the fuzzer's control
 * and a signature that is really made: the header and claim checks behind
 * the signature are reached for every input, not only for seeds.
 *
 * Input: FLAGS HEADER '\n' PAYLOAD
 *   FLAGS & 7    the signer: 0 ec1, 1 ed1, 2 rsa1, 3 AG_FUZZ_ISS2's key,
 *                4 an untrusted EC key, 5 an untrusted Ed25519 key,
 *                6 no signature at all, 7 ec1 with a DER signature
 *   FLAGS & 8    flip bit (FLAGS >> 4) of the signature's first byte
 * HEADER and PAYLOAD are base64url-encoded as they are.
 *
 * Oracles: only a trusted signer's intact signature verifies; a verified
 * token's claims passed the checks (trusted iss, exp not past, nbf and iat
 * not ahead, aud); its header alg fits the signer; a header whose typ is
 * "agentgov-..." never verifies.
 */

#include <strings.h>

#include "fuzz.h"
#include "ag_json.h"


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
ag_fuzz_str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s)
           && strcmp(json_string_value(v), s) == 0;
}


/* NumericDate v <= t (or >= t when ge) */
static int
ag_fuzz_time_cmp(json_t *v, int64_t t, int ge)
{
    double  d = json_number_value(v);

    if (json_is_integer(v)) {
        return ge ? json_integer_value(v) >= t : json_integer_value(v) <= t;
    }
    return ge ? d >= (double) t : d <= (double) t;
}


static void
ag_fuzz_verified(json_t *claims, json_t *hdr, int signer)
{
    size_t       i;
    json_t      *v, *aud, *alg;
    const char  *typ;
    static const char *const  algs[] = {
        "ES256", "EdDSA", "RS256", "ES256", "", "", "", "ES256"
    };

    ag_fuzz_assert(json_is_object(claims));

    /* the header too: it was read, so it is strict JSON */
    ag_fuzz_assert(json_is_object(hdr));
    alg = json_object_get(hdr, "alg");
    if (!ag_fuzz_str_is(alg, algs[signer])) {
        ag_fuzz_fail("verified with alg %s by signer %d",
                     json_is_string(alg) ? json_string_value(alg) : "?",
                     signer);
    }
    ag_fuzz_assert(json_object_get(hdr, "crit") == NULL);
    v = json_object_get(hdr, "typ");
    if (json_is_string(v)) {
        typ = json_string_value(v);
        if (strncasecmp(typ, "application/", 12) == 0) {
            typ += 12;
        }
        ag_fuzz_assert(strncasecmp(typ, "agentgov-", 9) != 0);
    }

    v = json_object_get(claims, "iss");
    ag_fuzz_assert(signer == 3 ? ag_fuzz_str_is(v, AG_FUZZ_ISS2)
                               : ag_fuzz_str_is(v, AG_FUZZ_ISS));

    v = json_object_get(claims, "exp");
    ag_fuzz_assert(json_is_number(v)
                   && ag_fuzz_time_cmp(v, AG_FUZZ_NOW - AG_FUZZ_SKEW, 1));

    v = json_object_get(claims, "nbf");
    ag_fuzz_assert(v == NULL || (json_is_number(v)
                   && ag_fuzz_time_cmp(v, AG_FUZZ_NOW + AG_FUZZ_SKEW, 0)));
    v = json_object_get(claims, "iat");
    ag_fuzz_assert(v == NULL || (json_is_number(v)
                   && ag_fuzz_time_cmp(v, AG_FUZZ_NOW + AG_FUZZ_SKEW, 0)));

    aud = json_object_get(claims, "aud");
    if (json_is_array(aud)) {
        json_array_foreach(aud, i, v) {
            if (ag_fuzz_str_is(v, AG_FUZZ_AUD)) {
                break;
            }
        }
        ag_fuzz_assert(i < json_array_size(aud));
    } else {
        ag_fuzz_assert(ag_fuzz_str_is(aud, AG_FUZZ_AUD));
    }
}


/* Flip one bit of the signature's first byte: a base64url character
   carries 6 bits, so re-encode through the decoded bytes. */
static void
ag_fuzz_flip(char *tok, int bit)
{
    char           *sig, *enc;
    long            n;
    size_t          len;
    unsigned char   raw[1024];

    sig = strrchr(tok, '.') + 1;
    len = strlen(sig);
    n = ag_b64url_decode(sig, len, raw, sizeof(raw));
    if (n <= 0) {
        return;
    }
    raw[0] ^= (unsigned char) (1u << bit);
    enc = ag_fuzz_b64(raw, (size_t) n);
    memcpy(sig, enc, len);
    free(enc);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               signer, flip;
    char              err[256], jerr[64], *tok;
    size_t            hlen, plen;
    json_t           *claims, *hdr;
    EVP_PKEY         *key;
    const char       *payload;
    ag_jwt_status_t   st;
    const ag_fuzz_jwt_fx_t  *fx = ag_fuzz_fx;

    if (size < 1) {
        return 0;
    }

    signer = data[0] & 7;
    flip = (data[0] & 8) != 0;

    ag_fuzz_split((const char *) data + 1, size - 1, '\n', &hlen, &payload,
                  &plen);

    switch (signer) {
    case 0:
    case 7:
        key = fx->ec1;
        break;
    case 1:
        key = fx->ed1;
        break;
    case 2:
        key = fx->rsa1;
        break;
    case 3:
        key = fx->other;
        break;
    case 4:
        key = fx->evil_ec;
        break;
    case 5:
        key = fx->evil_ed;
        break;
    default:
        key = NULL;
        break;
    }

    tok = ag_fuzz_jws(key, data + 1, hlen, payload, plen, signer == 7);
    if (flip && key != NULL) {
        ag_fuzz_flip(tok, data[0] >> 4 & 7);
    }

    claims = NULL;
    st = ag_jwt_verify(fx->trust, tok, strlen(tok), AG_FUZZ_AUD, AG_FUZZ_NOW,
                       &claims, err, sizeof(err));

    if (ag_fuzz_debug()) {
        fprintf(stderr, "jwt: %s%s%s\n", ag_jwt_status_name(st),
                st == AG_JWT_OK ? "" : ": ", st == AG_JWT_OK ? "" : err);
    }

    if (st == AG_JWT_OK) {
        if (signer >= 4 && signer <= 6) {
            ag_fuzz_fail("a token signed by %s verified",
                         signer == 6 ? "nobody" : "an untrusted key");
        }
        if (signer == 7) {
            ag_fuzz_fail("a DER-encoded ECDSA signature verified");
        }
        if (flip) {
            ag_fuzz_fail("a token with a flipped signature bit verified");
        }

        hdr = ag_json_parse((const char *) data + 1, hlen, jerr, sizeof(jerr));
        ag_fuzz_verified(claims, hdr, signer);
        json_decref(hdr);
        json_decref(claims);
    } else {
        ag_fuzz_assert(claims == NULL);
    }

    free(tok);
    return 0;
}
