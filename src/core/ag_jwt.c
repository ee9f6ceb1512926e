/*
 * JWS compact tokens and JWKS (SPEC section 3): verification of the tokens
 * that agents and people present, and signing of the gateway's own.
 *
 * Every field of a token is hostile until its signature is checked, and the
 * signature is checked before any claim but iss, so that nobody learns
 * anything about claim checks without holding a trusted key. Nothing read from
 * a token is ever copied into an error message.
 */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "ag_json.h"
#include "ag_jwt.h"
#include "ag_util.h"


#define AG_JWKS_MAX_FILE     (1024 * 1024)
#define AG_RSA_MIN_BITS      2048
#define AG_RSA_MAX_BITS      16384     /* OpenSSL's own ceiling for RSA */
#define AG_RSA_MAX_BYTES     (AG_RSA_MAX_BITS / 8)
#define AG_P256_LEN          32
#define AG_ED25519_LEN       32
#define AG_RAW_SIG_LEN       64        /* ES256 r||s and Ed25519 */

/* base64url length without padding, for n input bytes */
#define ag_b64url_len(n)     ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))


typedef enum {
    AG_ALG_ES256 = 0,
    AG_ALG_EDDSA,
    AG_ALG_RS256,
    AG_ALG_COUNT
} ag_alg_t;

static const char *const ag_alg_names[AG_ALG_COUNT] = {
    "ES256", "EdDSA", "RS256"
};

/* the key type that each algorithm needs, as JWK "kty" */
static const char *const ag_alg_kty[AG_ALG_COUNT] = {
    "EC", "OKP", "RSA"
};

/* order n of the P-256 group: r and s of a signature must be in [1, n-1] */
static const unsigned char ag_p256_order[AG_P256_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
    0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51
};

/* JWK members that only a private key has */
static const char *const ag_jwk_private_members[] = {
    "d", "p", "q", "dp", "dq", "qi", "oth", "k"
};


typedef struct {
    char          *kid;         /* NULL: the key has no "kid" */
    ag_alg_t       alg;         /* the one algorithm this key verifies */
    EVP_PKEY      *pkey;
} ag_jwk_t;

struct ag_jwks_s {
    ag_jwk_t      *keys;
    size_t         nkeys;
};

typedef struct {
    char          *iss;
    size_t         iss_len;
    ag_jwks_t     *jwks;
} ag_issuer_t;

struct ag_trust_s {
    ag_issuer_t   *issuers;
    size_t         nissuers;
    size_t         nalloc;
};

/* public members of a key, base64url, as a JWK names them */
typedef struct {
    const char    *kty;
    const char    *crv;         /* NULL for RSA */
    char          *x;           /* EC, OKP: x; RSA: n */
    char          *y;           /* EC: y; RSA: e; OKP: NULL */
} ag_pub_t;


/* --- base64url (RFC 4648 section 5, no padding, canonical only) ------------- */

static int
ag_b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}


long
ag_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t             i, o, need;
    uint32_t           v;

    if (len > (size_t) LONG_MAX / 4 * 3 - 3) {
        return -1;
    }
    need = ag_b64url_len(len);
    if (need > outlen) {
        return -1;
    }

    o = 0;
    for (i = 0; i + 3 <= len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 0x3f];
        out[o++] = alphabet[v >> 12 & 0x3f];
        out[o++] = alphabet[v >> 6 & 0x3f];
        out[o++] = alphabet[v & 0x3f];
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        out[o++] = alphabet[v >> 18 & 0x3f];
        out[o++] = alphabet[v >> 12 & 0x3f];

    } else if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 0x3f];
        out[o++] = alphabet[v >> 12 & 0x3f];
        out[o++] = alphabet[v >> 6 & 0x3f];
    }

    if (o < outlen) {
        out[o] = '\0';
    }

    return (long) o;
}


long
ag_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    size_t    i, o, rem, need;
    uint32_t  acc;
    int       v;

    rem = len % 4;
    if (rem == 1 || len > (size_t) LONG_MAX) {
        return -1;
    }

    need = len / 4 * 3 + (rem ? rem - 1 : 0);
    if (need > outlen) {
        return -1;
    }

    acc = 0;
    o = 0;

    for (i = 0; i < len; i++) {
        v = ag_b64url_value((unsigned char) in[i]);
        if (v < 0) {
            return -1;
        }

        acc = acc << 6 | (uint32_t) v;

        if ((i & 3) == 3) {
            out[o++] = (unsigned char) (acc >> 16);
            out[o++] = (unsigned char) (acc >> 8);
            out[o++] = (unsigned char) acc;
            acc = 0;
        }
    }

    /* the bits past the last whole byte must be zero: otherwise several
       texts decode to the same bytes */

    if (rem == 2) {
        if (acc & 0x0f) {
            return -1;
        }
        out[o++] = (unsigned char) (acc >> 4);

    } else if (rem == 3) {
        if (acc & 0x03) {
            return -1;
        }
        out[o++] = (unsigned char) (acc >> 10);
        out[o++] = (unsigned char) (acc >> 2);
    }

    return (long) o;
}


/* Decode a base64url JSON string member into buf; -1 if absent or bad. */
static long
ag_json_b64url(json_t *obj, const char *name, unsigned char *buf, size_t cap)
{
    json_t  *v;

    v = json_object_get(obj, name);
    if (!json_is_string(v)) {
        return -1;
    }

    return ag_b64url_decode(json_string_value(v), json_string_length(v), buf,
                            cap);
}


static int
ag_json_str_eq(json_t *v, const char *s)
{
    size_t  len = strlen(s);

    return json_is_string(v) && json_string_length(v) == len
           && memcmp(json_string_value(v), s, len) == 0;
}


/* --- public keys from JWK members (OpenSSL 3 provider API) ----------------- */

static EVP_PKEY *
ag_pkey_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY      *pkey, *checked;
    EVP_PKEY_CTX  *ctx;

    pkey = NULL;
    checked = NULL;

    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    EVP_PKEY_CTX_free(ctx);

    /* the provider's own validation: the EC point on the curve and in the
       group, the RSA modulus odd with a sane exponent */

    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx != NULL && EVP_PKEY_public_check(ctx) == 1) {
        checked = pkey;
        pkey = NULL;
    }

    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);

    return checked;
}


static EVP_PKEY *
ag_jwk_ec(json_t *k, char *err, size_t errlen)
{
    unsigned char  point[1 + 2 * AG_P256_LEN];
    unsigned char  x[AG_P256_LEN + 1], y[AG_P256_LEN + 1];
    char           group[] = "prime256v1";
    OSSL_PARAM     params[3];
    EVP_PKEY      *pkey;

    if (!ag_json_str_eq(json_object_get(k, "crv"), "P-256")) {
        ag_errf(err, errlen, "EC key: \"crv\" is not \"P-256\"");
        return NULL;
    }

    point[0] = 0x04;    /* uncompressed: x and y follow */

    /* each decoded into a buffer of its own: a long value must be refused
       by its length, never written past the point */
    if (ag_json_b64url(k, "x", x, sizeof(x)) != AG_P256_LEN
        || ag_json_b64url(k, "y", y, sizeof(y)) != AG_P256_LEN)
    {
        ag_errf(err, errlen, "EC key: \"x\" and \"y\" must be 32 bytes of "
               "base64url");
        return NULL;
    }

    memcpy(point + 1, x, AG_P256_LEN);
    memcpy(point + 1 + AG_P256_LEN, y, AG_P256_LEN);

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  point, sizeof(point));
    params[2] = OSSL_PARAM_construct_end();

    pkey = ag_pkey_fromdata("EC", params);
    if (pkey == NULL) {
        ag_errf(err, errlen, "EC key: the point is not on the P-256 curve");
    }

    return pkey;
}


static EVP_PKEY *
ag_jwk_okp(json_t *k, char *err, size_t errlen)
{
    unsigned char  x[AG_ED25519_LEN + 1];
    OSSL_PARAM     params[2];
    EVP_PKEY      *pkey;

    if (!ag_json_str_eq(json_object_get(k, "crv"), "Ed25519")) {
        ag_errf(err, errlen, "OKP key: \"crv\" is not \"Ed25519\"");
        return NULL;
    }

    if (ag_json_b64url(k, "x", x, sizeof(x)) != AG_ED25519_LEN) {
        ag_errf(err, errlen, "OKP key: \"x\" must be 32 bytes of base64url");
        return NULL;
    }

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  x, AG_ED25519_LEN);
    params[1] = OSSL_PARAM_construct_end();

    pkey = ag_pkey_fromdata("ED25519", params);
    if (pkey == NULL) {
        ag_errf(err, errlen, "OKP key: not a valid Ed25519 public key");
    }

    return pkey;
}


static EVP_PKEY *
ag_jwk_rsa(json_t *k, char *err, size_t errlen)
{
    unsigned char    nbuf[AG_RSA_MAX_BYTES + 1], ebuf[16];
    long             nlen, elen;
    int              bits;
    BIGNUM          *n, *e;
    EVP_PKEY        *pkey;
    OSSL_PARAM      *params;
    OSSL_PARAM_BLD  *bld;

    nlen = ag_json_b64url(k, "n", nbuf, sizeof(nbuf));
    elen = ag_json_b64url(k, "e", ebuf, sizeof(ebuf));
    if (nlen <= 0 || elen <= 0) {
        ag_errf(err, errlen, "RSA key: \"n\" and \"e\" must be base64url "
               "(e at most %zu bytes, n at most %d bits)", sizeof(ebuf),
               AG_RSA_MAX_BITS);
        return NULL;
    }

    pkey = NULL;
    params = NULL;
    bld = NULL;
    n = BN_bin2bn(nbuf, (int) nlen, NULL);
    e = BN_bin2bn(ebuf, (int) elen, NULL);
    if (n == NULL || e == NULL) {
        ag_errf(err, errlen, "out of memory");
        goto done;
    }

    bits = BN_num_bits(n);
    if (bits < AG_RSA_MIN_BITS || bits > AG_RSA_MAX_BITS) {
        ag_errf(err, errlen, "RSA key: %d bits, not in [%d, %d]", bits,
               AG_RSA_MIN_BITS, AG_RSA_MAX_BITS);
        goto done;
    }

    if (!BN_is_odd(e) || BN_is_one(e)) {
        ag_errf(err, errlen, "RSA key: bad public exponent");
        goto done;
    }

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
    {
        ag_errf(err, errlen, "out of memory");
        goto done;
    }

    pkey = ag_pkey_fromdata("RSA", params);
    if (pkey == NULL) {
        ag_errf(err, errlen, "RSA key: not a valid public key");
    }

done:

    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);

    return pkey;
}


/* --- JWKS ----------------------------------------------------------------- */

typedef enum {
    AG_JWK_ERROR = -1,
    AG_JWK_USED = 0,
    AG_JWK_SKIPPED
} ag_jwk_rc_t;


static ag_jwk_rc_t
ag_jwk_parse(json_t *k, ag_jwk_t *key, char *err, size_t errlen)
{
    size_t       i;
    json_t      *use, *kty, *alg, *kid;
    ag_alg_t     a;

    if (!json_is_object(k)) {
        ag_errf(err, errlen, "not an object");
        return AG_JWK_ERROR;
    }

    use = json_object_get(k, "use");
    if (use != NULL) {
        if (!json_is_string(use)) {
            ag_errf(err, errlen, "\"use\" is not a string");
            return AG_JWK_ERROR;
        }
        if (!ag_json_str_eq(use, "sig")) {
            return AG_JWK_SKIPPED;      /* an encryption key, not ours */
        }
    }

    for (i = 0; i < sizeof(ag_jwk_private_members) / sizeof(char *); i++) {
        if (json_object_get(k, ag_jwk_private_members[i]) != NULL) {
            ag_errf(err, errlen, "private key material (\"%s\") in a JWKS of "
                   "public keys", ag_jwk_private_members[i]);
            return AG_JWK_ERROR;
        }
    }

    kty = json_object_get(k, "kty");
    for (a = 0; a < AG_ALG_COUNT; a++) {
        if (ag_json_str_eq(kty, ag_alg_kty[a])) {
            break;
        }
    }
    if (a == AG_ALG_COUNT) {
        ag_errf(err, errlen, "\"kty\" is missing or not one of EC, OKP, RSA");
        return AG_JWK_ERROR;
    }

    alg = json_object_get(k, "alg");
    if (alg != NULL && !ag_json_str_eq(alg, ag_alg_names[a])) {
        ag_errf(err, errlen, "\"alg\" does not fit kty %s (want %s)",
               ag_alg_kty[a], ag_alg_names[a]);
        return AG_JWK_ERROR;
    }

    kid = json_object_get(k, "kid");
    if (kid != NULL && !json_is_string(kid)) {
        ag_errf(err, errlen, "\"kid\" is not a string");
        return AG_JWK_ERROR;
    }

    switch (a) {
    case AG_ALG_ES256:
        key->pkey = ag_jwk_ec(k, err, errlen);
        break;
    case AG_ALG_EDDSA:
        key->pkey = ag_jwk_okp(k, err, errlen);
        break;
    default:
        key->pkey = ag_jwk_rsa(k, err, errlen);
        break;
    }

    if (key->pkey == NULL) {
        return AG_JWK_ERROR;
    }

    key->alg = a;
    key->kid = NULL;

    if (kid != NULL) {
        key->kid = strdup(json_string_value(kid));
        if (key->kid == NULL) {
            ag_errf(err, errlen, "out of memory");
            EVP_PKEY_free(key->pkey);
            key->pkey = NULL;
            return AG_JWK_ERROR;
        }
    }

    return AG_JWK_USED;
}


static int
ag_jwks_has_kid(const ag_jwks_t *jwks, const char *kid)
{
    size_t  i;

    for (i = 0; i < jwks->nkeys; i++) {
        if (jwks->keys[i].kid != NULL && strcmp(jwks->keys[i].kid, kid) == 0) {
            return 1;
        }
    }

    return 0;
}


ag_jwks_t *
ag_jwks_parse(const char *data, size_t len, char *err, size_t errlen)
{
    char        jerr[160];
    size_t      i;
    json_t     *root, *keys, *k;
    ag_jwk_t   *key;
    ag_jwks_t  *jwks;

    root = ag_json_parse(data, len, jerr, sizeof(jerr));
    if (root == NULL) {
        ag_errf(err, errlen, "JWKS: %s", jerr);
        return NULL;
    }

    keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        ag_errf(err, errlen, "JWKS: not an object with a \"keys\" array");
        json_decref(root);
        return NULL;
    }

    jwks = calloc(1, sizeof(ag_jwks_t));
    if (jwks == NULL
        || (jwks->keys = calloc(json_array_size(keys) + 1, sizeof(ag_jwk_t)))
           == NULL)
    {
        ag_errf(err, errlen, "out of memory");
        free(jwks);
        json_decref(root);
        return NULL;
    }

    /* OpenSSL's errors about a bad key are ours to report, not the caller's
       to find in the queue later */

    ERR_set_mark();

    json_array_foreach(keys, i, k) {
        key = &jwks->keys[jwks->nkeys];

        switch (ag_jwk_parse(k, key, jerr, sizeof(jerr))) {
        case AG_JWK_SKIPPED:
            continue;
        case AG_JWK_ERROR:
            ag_errf(err, errlen, "JWKS: key %zu: %s", i, jerr);
            goto failed;
        default:
            break;
        }

        if (key->kid != NULL && ag_jwks_has_kid(jwks, key->kid)) {
            jwks->nkeys++;
            ag_errf(err, errlen, "JWKS: key %zu: duplicate \"kid\"", i);
            goto failed;
        }

        jwks->nkeys++;
    }

    if (jwks->nkeys == 0) {
        ag_errf(err, errlen, "JWKS: no signature key");
        goto failed;
    }

    ERR_pop_to_mark();
    json_decref(root);
    return jwks;

failed:

    ERR_pop_to_mark();
    json_decref(root);
    ag_jwks_free(jwks);
    return NULL;
}


ag_jwks_t *
ag_jwks_load(const char *path, char *err, size_t errlen)
{
    char       *data, perr[256];
    size_t      len;
    ag_jwks_t  *jwks;

    data = ag_read_file(path, AG_JWKS_MAX_FILE, &len, err, errlen);
    if (data == NULL) {
        return NULL;
    }

    jwks = ag_jwks_parse(data, len, perr, sizeof(perr));
    if (jwks == NULL) {
        ag_errf(err, errlen, "%s: %s", path, perr);
    }

    free(data);
    return jwks;
}


void
ag_jwks_free(ag_jwks_t *jwks)
{
    size_t  i;

    if (jwks == NULL) {
        return;
    }

    for (i = 0; i < jwks->nkeys; i++) {
        EVP_PKEY_free(jwks->keys[i].pkey);
        free(jwks->keys[i].kid);
    }

    free(jwks->keys);
    free(jwks);
}


size_t
ag_jwks_count(const ag_jwks_t *jwks)
{
    return jwks == NULL ? 0 : jwks->nkeys;
}


/* --- trusted issuers ---------------------------------------------------------- */

ag_trust_t *
ag_trust_new(void)
{
    return calloc(1, sizeof(ag_trust_t));
}


static const ag_issuer_t *
ag_trust_find(const ag_trust_t *t, const char *iss, size_t len)
{
    size_t  i;

    for (i = 0; i < t->nissuers; i++) {
        if (t->issuers[i].iss_len == len
            && memcmp(t->issuers[i].iss, iss, len) == 0)
        {
            return &t->issuers[i];
        }
    }

    return NULL;
}


int
ag_trust_add(ag_trust_t *t, const char *iss, ag_jwks_t *jwks, char *err,
    size_t errlen)
{
    size_t        n;
    ag_issuer_t  *issuers;

    if (t == NULL || iss == NULL || iss[0] == '\0' || jwks == NULL) {
        ag_errf(err, errlen, "trust: an issuer needs a name and a JWKS");
        ag_jwks_free(jwks);
        return -1;
    }

    if (ag_trust_find(t, iss, strlen(iss)) != NULL) {
        ag_errf(err, errlen, "trust: duplicate issuer \"%s\"", iss);
        ag_jwks_free(jwks);
        return -1;
    }

    if (t->nissuers == t->nalloc) {
        n = t->nalloc ? t->nalloc * 2 : 4;
        issuers = realloc(t->issuers, n * sizeof(ag_issuer_t));
        if (issuers == NULL) {
            ag_errf(err, errlen, "out of memory");
            ag_jwks_free(jwks);
            return -1;
        }
        t->issuers = issuers;
        t->nalloc = n;
    }

    t->issuers[t->nissuers].iss = strdup(iss);
    if (t->issuers[t->nissuers].iss == NULL) {
        ag_errf(err, errlen, "out of memory");
        ag_jwks_free(jwks);
        return -1;
    }

    t->issuers[t->nissuers].iss_len = strlen(iss);
    t->issuers[t->nissuers].jwks = jwks;
    t->nissuers++;

    return 0;
}


void
ag_trust_free(ag_trust_t *t)
{
    size_t  i;

    if (t == NULL) {
        return;
    }

    for (i = 0; i < t->nissuers; i++) {
        free(t->issuers[i].iss);
        ag_jwks_free(t->issuers[i].jwks);
    }

    free(t->issuers);
    free(t);
}


/* --- verification --------------------------------------------------------- */

const char *
ag_jwt_status_name(ag_jwt_status_t s)
{
    switch (s) {
    case AG_JWT_OK:             return "ok";
    case AG_JWT_TOO_LARGE:      return "too_large";
    case AG_JWT_MALFORMED:      return "malformed";
    case AG_JWT_BAD_ALG:        return "bad_alg";
    case AG_JWT_BAD_HEADER:     return "bad_header";
    case AG_JWT_UNTRUSTED:      return "untrusted";
    case AG_JWT_BAD_SIGNATURE:  return "bad_signature";
    case AG_JWT_EXPIRED:        return "expired";
    case AG_JWT_NOT_YET_VALID:  return "not_yet_valid";
    case AG_JWT_BAD_AUDIENCE:   return "bad_audience";
    }

    return "unknown";
}


typedef struct {
    const char     *p;
    size_t          len;
} ag_seg_t;


/* Decode a base64url segment holding a JSON object. */
static json_t *
ag_jwt_segment_json(const ag_seg_t *seg, unsigned char *buf, size_t cap)
{
    char     jerr[8];
    long     n;
    json_t  *v;

    n = ag_b64url_decode(seg->p, seg->len, buf, cap);
    if (n <= 0) {
        return NULL;
    }

    v = ag_json_parse((const char *) buf, (size_t) n, jerr, sizeof(jerr));
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }

    return v;
}


static ag_jwt_status_t
ag_jwt_split(const char *tok, size_t len, ag_seg_t seg[3], char *err,
    size_t errlen)
{
    size_t  i, n, start;

    n = 0;
    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && tok[i] != '.') {
            continue;
        }
        if (n == 3) {
            ag_errf(err, errlen, "token has more than three segments");
            return AG_JWT_MALFORMED;
        }
        seg[n].p = tok + start;
        seg[n].len = i - start;
        n++;
        start = i + 1;
    }

    if (n != 3) {
        ag_errf(err, errlen, "token does not have three segments");
        return AG_JWT_MALFORMED;
    }

    return AG_JWT_OK;
}


/*
 * alg, crit, typ, kid; jwk, jku, x5u, x5c and x5t are deliberately never
 * read. want_typ NULL: a token from outside, whose typ must not be one of
 * the gateway's own; else the typ the token must have, so that a token the
 * gateway signed for one purpose is never taken for another.
 */
static ag_jwt_status_t
ag_jwt_check_header(json_t *hdr, const char *want_typ, ag_alg_t *alg,
    json_t **kid, char *err, size_t errlen)
{
    json_t      *v;
    const char  *typ;
    size_t       typ_len;
    ag_alg_t     a;

    v = json_object_get(hdr, "alg");
    for (a = 0; a < AG_ALG_COUNT; a++) {
        if (ag_json_str_eq(v, ag_alg_names[a])) {
            break;
        }
    }
    if (a == AG_ALG_COUNT) {
        ag_errf(err, errlen, "token alg is not ES256, EdDSA or RS256");
        return AG_JWT_BAD_ALG;
    }

    /* we implement no JWS extension, so any "crit" names one we do not
       understand (and an empty list is invalid, RFC 7515 section 4.1.11) */

    if (json_object_get(hdr, "crit") != NULL) {
        ag_errf(err, errlen, "token header has \"crit\"");
        return AG_JWT_BAD_HEADER;
    }

    /* RFC 7797: an unencoded payload would be read differently by a signer
       that meant it; without crit it is invalid anyway */

    v = json_object_get(hdr, "b64");
    if (v != NULL && !json_is_true(v)) {
        ag_errf(err, errlen, "token header has \"b64\"");
        return AG_JWT_BAD_HEADER;
    }

    /* typ is a media type, compared case-insensitively, and "application/"
       may be omitted (RFC 7515 section 4.1.9) */

    v = json_object_get(hdr, "typ");
    if (v != NULL && !json_is_string(v)) {
        ag_errf(err, errlen, "token typ is not a string");
        return AG_JWT_BAD_HEADER;
    }

    typ = NULL;
    typ_len = 0;

    if (v != NULL) {
        typ = json_string_value(v);
        typ_len = json_string_length(v);
        if (typ_len >= 12 && strncasecmp(typ, "application/", 12) == 0) {
            typ += 12;
            typ_len -= 12;
        }
    }

    if (want_typ != NULL) {
        if (typ == NULL || typ_len != strlen(want_typ)
            || strncasecmp(typ, want_typ, typ_len) != 0)
        {
            ag_errf(err, errlen, "token typ is not %s", want_typ);
            return AG_JWT_BAD_HEADER;
        }

    } else if (typ_len >= 9 && strncasecmp(typ, "agentgov-", 9) == 0) {
        ag_errf(err, errlen, "token typ is reserved for the gateway");
        return AG_JWT_BAD_HEADER;
    }

    v = json_object_get(hdr, "kid");
    if (v != NULL && !json_is_string(v)) {
        ag_errf(err, errlen, "token kid is not a string");
        return AG_JWT_MALFORMED;
    }

    *alg = a;
    *kid = v;

    return AG_JWT_OK;
}


/* The key that kid names in jwks, or without kid the one key of jwks that
   fits alg. */
static ag_jwt_status_t
ag_jwks_find_key(const ag_jwks_t *jwks, ag_alg_t alg, json_t *kid,
    const ag_jwk_t **key, char *err, size_t errlen)
{
    size_t           i, fitting;
    const ag_jwk_t  *k;

    if (kid != NULL) {
        for (i = 0; i < jwks->nkeys; i++) {
            k = &jwks->keys[i];

            if (k->kid != NULL && ag_json_str_eq(kid, k->kid)) {
                if (k->alg != alg) {
                    ag_errf(err, errlen, "token alg does not fit the key kid "
                           "names");
                    return AG_JWT_BAD_ALG;
                }
                *key = k;
                return AG_JWT_OK;
            }
        }

        ag_errf(err, errlen, "no trusted key has the token's kid");
        return AG_JWT_UNTRUSTED;
    }

    fitting = 0;
    for (i = 0; i < jwks->nkeys; i++) {
        if (jwks->keys[i].alg == alg) {
            *key = &jwks->keys[i];
            fitting++;
        }
    }

    if (fitting == 0) {
        ag_errf(err, errlen, "token alg fits no trusted key");
        return AG_JWT_BAD_ALG;
    }

    if (fitting > 1) {
        ag_errf(err, errlen, "token has no kid and there are several keys");
        return AG_JWT_UNTRUSTED;
    }

    return AG_JWT_OK;
}


/* The issuer from the unverified payload, then the key from its JWKS only. */
static ag_jwt_status_t
ag_jwt_find_key(const ag_trust_t *t, json_t *payload, ag_alg_t alg,
    json_t *kid, const ag_jwk_t **key, char *err, size_t errlen)
{
    json_t             *iss;
    const ag_issuer_t  *issuer;

    iss = json_object_get(payload, "iss");
    if (!json_is_string(iss)) {
        ag_errf(err, errlen, "token has no iss");
        return AG_JWT_UNTRUSTED;
    }

    issuer = (t == NULL) ? NULL
             : ag_trust_find(t, json_string_value(iss), json_string_length(iss));
    if (issuer == NULL) {
        ag_errf(err, errlen, "token issuer is not trusted");
        return AG_JWT_UNTRUSTED;
    }

    return ag_jwks_find_key(issuer->jwks, alg, kid, key, err, errlen);
}


/* r and s of an ECDSA signature in [1, n-1], big-endian, 32 bytes each */
static int
ag_p256_scalar_ok(const unsigned char *p)
{
    size_t  i;

    for (i = 0; i < AG_P256_LEN; i++) {
        if (p[i] != 0) {
            return memcmp(p, ag_p256_order, AG_P256_LEN) < 0;
        }
    }

    return 0;
}


/* JOSE's raw r||s to the DER ECDSA-Sig-Value that EVP wants */
static int
ag_es256_raw_to_der(const unsigned char *raw, unsigned char **der)
{
    int         len;
    BIGNUM     *r, *s;
    ECDSA_SIG  *sig;

    sig = ECDSA_SIG_new();
    r = BN_bin2bn(raw, AG_P256_LEN, NULL);
    s = BN_bin2bn(raw + AG_P256_LEN, AG_P256_LEN, NULL);

    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1)
    {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return -1;
    }

    *der = NULL;
    len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);

    return len;
}


static int
ag_evp_verify(EVP_PKEY *pkey, ag_alg_t alg, const unsigned char *sig,
    size_t siglen, const unsigned char *data, size_t len)
{
    int            rc;
    EVP_MD_CTX    *md;
    EVP_PKEY_CTX  *pctx;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return 0;
    }

    rc = 0;
    pctx = NULL;

    if (EVP_DigestVerifyInit_ex(md, &pctx, alg == AG_ALG_EDDSA ? NULL
                                : "SHA256", NULL, NULL, pkey, NULL) == 1
        && (alg != AG_ALG_RS256
            || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1))
    {
        rc = EVP_DigestVerify(md, sig, siglen, data, len) == 1;
    }

    EVP_MD_CTX_free(md);
    return rc;
}


static ag_jwt_status_t
ag_jwt_check_signature(const ag_jwk_t *key, const ag_seg_t seg[3],
    unsigned char *buf, size_t cap, char *err, size_t errlen)
{
    int             ok, derlen;
    long            n;
    size_t          want;
    unsigned char  *der;

    n = ag_b64url_decode(seg[2].p, seg[2].len, buf, cap);
    if (n < 0) {
        ag_errf(err, errlen, "token signature is not base64url");
        return AG_JWT_MALFORMED;
    }

    want = (key->alg == AG_ALG_RS256) ? (size_t) EVP_PKEY_get_size(key->pkey)
                                      : AG_RAW_SIG_LEN;
    if ((size_t) n != want) {
        ag_errf(err, errlen, "token signature has the wrong length");
        return AG_JWT_BAD_SIGNATURE;
    }

    /* signing input: the header and payload segments as sent */

    if (key->alg == AG_ALG_ES256) {
        if (!ag_p256_scalar_ok(buf) || !ag_p256_scalar_ok(buf + AG_P256_LEN)) {
            ag_errf(err, errlen, "token signature is out of range");
            return AG_JWT_BAD_SIGNATURE;
        }

        derlen = ag_es256_raw_to_der(buf, &der);
        if (derlen <= 0) {
            ag_errf(err, errlen, "out of memory");
            return AG_JWT_BAD_SIGNATURE;
        }

        ok = ag_evp_verify(key->pkey, key->alg, der, (size_t) derlen,
                           (const unsigned char *) seg[0].p,
                           seg[0].len + 1 + seg[1].len);
        OPENSSL_free(der);

    } else {
        ok = ag_evp_verify(key->pkey, key->alg, buf, (size_t) n,
                           (const unsigned char *) seg[0].p,
                           seg[0].len + 1 + seg[1].len);
    }

    if (!ok) {
        ag_errf(err, errlen, "token signature does not verify");
        return AG_JWT_BAD_SIGNATURE;
    }

    return AG_JWT_OK;
}


/* Compare the NumericDate v (an integer or a real) with t: -1, 0 or 1 into
   *cmp; returns -1 when v is not a number. */
static int
ag_numeric_cmp(json_t *v, int64_t t, int *cmp)
{
    double      d;
    json_int_t  i;

    if (json_is_integer(v)) {
        i = json_integer_value(v);
        *cmp = (i > t) - (i < t);
        return 0;
    }

    if (json_is_real(v)) {
        d = json_real_value(v);
        *cmp = (d > (double) t) - (d < (double) t);
        return 0;
    }

    return -1;
}


/* now + delta, saturated instead of overflowing */
static int64_t
ag_time_add(int64_t now, int64_t delta)
{
    if (delta > 0 && now > INT64_MAX - delta) {
        return INT64_MAX;
    }
    if (delta < 0 && now < INT64_MIN - delta) {
        return INT64_MIN;
    }
    return now + delta;
}


static int
ag_aud_holds(json_t *aud, const char *audience)
{
    size_t   i;
    json_t  *v;

    if (audience == NULL) {
        return 0;
    }

    if (json_is_string(aud)) {
        return ag_json_str_eq(aud, audience);
    }

    json_array_foreach(aud, i, v) {
        if (ag_json_str_eq(v, audience)) {
            return 1;
        }
    }

    return 0;
}


static ag_jwt_status_t
ag_jwt_check_claims(json_t *payload, const char *audience, int64_t now,
    char *err, size_t errlen)
{
    int                       cmp;
    size_t                    i;
    json_t                   *v;
    static const char *const  names[2] = { "nbf", "iat" };

    /* expired once now > exp + skew, that is exp < now - skew */

    if (ag_numeric_cmp(json_object_get(payload, "exp"),
                       ag_time_add(now, -AG_JWT_SKEW), &cmp) != 0)
    {
        ag_errf(err, errlen, "token has no numeric exp");
        return AG_JWT_EXPIRED;
    }
    if (cmp < 0) {
        ag_errf(err, errlen, "token has expired");
        return AG_JWT_EXPIRED;
    }

    /* not yet valid while nbf or iat > now + skew */

    for (i = 0; i < 2; i++) {
        v = json_object_get(payload, names[i]);
        if (v == NULL) {
            continue;
        }

        if (ag_numeric_cmp(v, ag_time_add(now, AG_JWT_SKEW), &cmp) != 0) {
            ag_errf(err, errlen, "token %s is not a number", names[i]);
            return AG_JWT_MALFORMED;
        }
        if (cmp > 0) {
            ag_errf(err, errlen, "token is not yet valid (%s)", names[i]);
            return AG_JWT_NOT_YET_VALID;
        }
    }

    if (!ag_aud_holds(json_object_get(payload, "aud"), audience)) {
        ag_errf(err, errlen, "token audience is not this gateway");
        return AG_JWT_BAD_AUDIENCE;
    }

    return AG_JWT_OK;
}


/*
 * The steps every verification starts with: size, three base64url segments,
 * and the header (alg, kid, typ: ag_jwt_check_header). On success *hdr is
 * a reference the caller releases; kid is borrowed from it.
 */

static ag_jwt_status_t
ag_jwt_open(const char *tok, size_t len, const char *typ, ag_seg_t seg[3],
    unsigned char *buf, size_t cap, ag_alg_t *alg, json_t **hdr,
    json_t **kid, char *err, size_t errlen)
{
    ag_jwt_status_t  rc;

    if (len > AG_JWT_MAX_LEN) {
        ag_errf(err, errlen, "token is over %d bytes", AG_JWT_MAX_LEN);
        return AG_JWT_TOO_LARGE;
    }

    if (tok == NULL) {
        ag_errf(err, errlen, "no token");
        return AG_JWT_MALFORMED;
    }

    rc = ag_jwt_split(tok, len, seg, err, errlen);
    if (rc != AG_JWT_OK) {
        return rc;
    }

    *hdr = ag_jwt_segment_json(&seg[0], buf, cap);
    if (*hdr == NULL) {
        ag_errf(err, errlen, "token header is not a base64url JSON object");
        return AG_JWT_MALFORMED;
    }

    rc = ag_jwt_check_header(*hdr, typ, alg, kid, err, errlen);
    if (rc != AG_JWT_OK) {
        json_decref(*hdr);
        *hdr = NULL;
    }

    return rc;
}


ag_jwt_status_t
ag_jwt_verify(const ag_trust_t *t, const char *tok, size_t len,
    const char *audience, int64_t now, json_t **claims, char *err,
    size_t errlen)
{
    unsigned char     buf[AG_JWT_MAX_LEN];
    ag_seg_t          seg[3];
    ag_alg_t          alg;
    json_t           *hdr, *payload, *kid;
    ag_jwt_status_t   rc;
    const ag_jwk_t   *key;

    if (claims != NULL) {
        *claims = NULL;
    }

    rc = ag_jwt_open(tok, len, NULL, seg, buf, sizeof(buf), &alg, &hdr, &kid,
                     err, errlen);
    if (rc != AG_JWT_OK) {
        return rc;
    }

    payload = ag_jwt_segment_json(&seg[1], buf, sizeof(buf));
    if (payload == NULL) {
        ag_errf(err, errlen, "token payload is not a base64url JSON object");
        json_decref(hdr);
        return AG_JWT_MALFORMED;
    }

    ERR_set_mark();

    key = NULL;
    rc = ag_jwt_find_key(t, payload, alg, kid, &key, err, errlen);

    if (rc == AG_JWT_OK) {
        rc = ag_jwt_check_signature(key, seg, buf, sizeof(buf), err, errlen);
    }

    ERR_pop_to_mark();

    if (rc == AG_JWT_OK) {
        rc = ag_jwt_check_claims(payload, audience, now, err, errlen);
    }

    json_decref(hdr);

    if (rc == AG_JWT_OK && claims != NULL) {
        *claims = payload;
    } else {
        json_decref(payload);
    }

    return rc;
}


ag_jwt_status_t
ag_jws_verify_jwks(const ag_jwks_t *jwks, const char *tok, size_t len,
    const char *typ, json_t **payload, char *err, size_t errlen)
{
    unsigned char     buf[AG_JWT_MAX_LEN];
    ag_seg_t          seg[3];
    ag_alg_t          alg;
    json_t           *hdr, *pl, *kid;
    ag_jwt_status_t   rc;
    const ag_jwk_t   *key;

    if (payload != NULL) {
        *payload = NULL;
    }

    if (jwks == NULL || typ == NULL) {
        ag_errf(err, errlen, "no token");
        return AG_JWT_MALFORMED;
    }

    rc = ag_jwt_open(tok, len, typ, seg, buf, sizeof(buf), &alg, &hdr, &kid,
                     err, errlen);
    if (rc != AG_JWT_OK) {
        return rc;
    }

    key = NULL;
    rc = ag_jwks_find_key(jwks, alg, kid, &key, err, errlen);

    json_decref(hdr);

    if (rc != AG_JWT_OK) {
        return rc;
    }

    /* the signature before the payload is even decoded: nothing the
       payload says matters unless the key signed it */

    ERR_set_mark();
    rc = ag_jwt_check_signature(key, seg, buf, sizeof(buf), err, errlen);
    ERR_pop_to_mark();

    if (rc != AG_JWT_OK) {
        return rc;
    }

    pl = ag_jwt_segment_json(&seg[1], buf, sizeof(buf));
    if (pl == NULL) {
        ag_errf(err, errlen, "token payload is not a base64url JSON object");
        return AG_JWT_MALFORMED;
    }

    if (payload != NULL) {
        *payload = pl;
    } else {
        json_decref(pl);
    }

    return AG_JWT_OK;
}


/* --- the gateway's own keys and tokens --------------------------------------- */

static int
ag_key_is_p256(EVP_PKEY *key)
{
    char    name[64];
    size_t  len;
    int     nid;

    if (EVP_PKEY_get_group_name(key, name, sizeof(name), &len) != 1) {
        return 0;
    }

    nid = EC_curve_nist2nid(name);
    if (nid == NID_undef) {
        nid = OBJ_sn2nid(name);
    }

    return nid == NID_X9_62_prime256v1;
}


static int
ag_key_kind(EVP_PKEY *key, ag_alg_t *alg)
{
    int  bits;

    if (key == NULL) {
        return -1;
    }

    if (EVP_PKEY_is_a(key, "ED25519")) {
        *alg = AG_ALG_EDDSA;
        return 0;
    }

    if (EVP_PKEY_is_a(key, "EC") && ag_key_is_p256(key)) {
        *alg = AG_ALG_ES256;
        return 0;
    }

    if (EVP_PKEY_is_a(key, "RSA")) {
        bits = EVP_PKEY_get_bits(key);
        if (bits >= AG_RSA_MIN_BITS && bits <= AG_RSA_MAX_BITS) {
            *alg = AG_ALG_RS256;
            return 0;
        }
    }

    return -1;
}


const char *
ag_key_alg(EVP_PKEY *key)
{
    ag_alg_t  alg;

    if (ag_key_kind(key, &alg) != 0) {
        return NULL;
    }

    return ag_alg_names[alg];
}


/* never prompt on a terminal for a passphrase: an encrypted key fails */
static int
ag_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void) buf;
    (void) size;
    (void) rwflag;
    (void) u;

    return -1;
}


EVP_PKEY *
ag_key_load_private(const char *path, char *err, size_t errlen)
{
    BIO       *bio;
    EVP_PKEY  *key;

    ERR_set_mark();

    bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        ag_errf(err, errlen, "cannot open %s", path);
        ERR_pop_to_mark();
        return NULL;
    }

    key = PEM_read_bio_PrivateKey_ex(bio, NULL, ag_no_passphrase, NULL, NULL,
                                     NULL);
    BIO_free(bio);
    ERR_pop_to_mark();

    if (key == NULL) {
        ag_errf(err, errlen, "%s: not an unencrypted PEM private key", path);
        return NULL;
    }

    if (ag_key_alg(key) == NULL) {
        ag_errf(err, errlen, "%s: the key is not Ed25519, P-256 or RSA of "
               "%d to %d bits", path, AG_RSA_MIN_BITS, AG_RSA_MAX_BITS);
        EVP_PKEY_free(key);
        return NULL;
    }

    return key;
}


/* base64url of a BIGNUM parameter, big-endian, at least pad bytes long */
static char *
ag_bn_param_b64(EVP_PKEY *key, const char *name, int pad)
{
    int             n;
    char           *out;
    BIGNUM         *bn;
    unsigned char  *bin;

    bn = NULL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) {
        return NULL;
    }

    n = BN_num_bytes(bn);
    if (n < pad) {
        n = pad;
    }

    out = NULL;
    bin = malloc((size_t) n);
    if (bin != NULL && BN_bn2binpad(bn, bin, n) == n) {
        out = malloc(ag_b64url_len((size_t) n) + 1);
        if (out != NULL) {
            ag_b64url_encode(bin, (size_t) n, out,
                             ag_b64url_len((size_t) n) + 1);
        }
    }

    free(bin);
    BN_free(bn);
    return out;
}


static void
ag_pub_free(ag_pub_t *pub)
{
    free(pub->x);
    free(pub->y);
}


static int
ag_pub_read(EVP_PKEY *key, ag_pub_t *pub)
{
    unsigned char  raw[AG_ED25519_LEN];
    size_t         len;
    ag_alg_t       alg;

    pub->x = NULL;
    pub->y = NULL;
    pub->crv = NULL;

    if (ag_key_kind(key, &alg) != 0) {
        return -1;
    }

    pub->kty = ag_alg_kty[alg];

    switch (alg) {

    case AG_ALG_ES256:
        pub->crv = "P-256";
        pub->x = ag_bn_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, AG_P256_LEN);
        pub->y = ag_bn_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, AG_P256_LEN);
        break;

    case AG_ALG_EDDSA:
        pub->crv = "Ed25519";
        if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, raw,
                                            sizeof(raw), &len) == 1
            && len == AG_ED25519_LEN)
        {
            pub->x = malloc(ag_b64url_len(AG_ED25519_LEN) + 1);
            if (pub->x != NULL) {
                ag_b64url_encode(raw, len, pub->x,
                                 ag_b64url_len(AG_ED25519_LEN) + 1);
            }
        }
        /* y unused: a non-NULL marker keeps the check below uniform */
        pub->y = strdup("");
        break;

    default:
        pub->x = ag_bn_param_b64(key, OSSL_PKEY_PARAM_RSA_N, 0);
        pub->y = ag_bn_param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
        break;
    }

    if (pub->x == NULL || pub->y == NULL) {
        ag_pub_free(pub);
        return -1;
    }

    return 0;
}


static int
ag_pub_get(EVP_PKEY *key, ag_pub_t *pub)
{
    int  rc;

    ERR_set_mark();
    rc = ag_pub_read(key, pub);
    ERR_pop_to_mark();

    return rc;
}


int
ag_key_thumbprint(EVP_PKEY *key, char *out, size_t outlen)
{
    int            n, rc;
    char          *json;
    size_t         size;
    ag_pub_t       pub;
    unsigned char  md[32];
    unsigned int   mdlen;

    if (outlen < ag_b64url_len(sizeof(md)) + 1 || ag_pub_get(key, &pub) != 0) {
        return -1;
    }

    /* RFC 7638 section 3.2: the required members only, in lexicographic
       order, no whitespace; the values are base64url and need no escaping */

    size = strlen(pub.x) + strlen(pub.y) + 64;
    json = malloc(size);
    if (json == NULL) {
        ag_pub_free(&pub);
        return -1;
    }

    if (strcmp(pub.kty, "RSA") == 0) {
        n = snprintf(json, size, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}",
                     pub.y, pub.x);
    } else if (strcmp(pub.kty, "EC") == 0) {
        n = snprintf(json, size,
                     "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                     pub.crv, pub.x, pub.y);
    } else {
        n = snprintf(json, size, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}",
                     pub.crv, pub.x);
    }

    rc = -1;
    if (n > 0 && (size_t) n < size
        && EVP_Digest(json, (size_t) n, md, &mdlen, EVP_sha256(), NULL) == 1
        && ag_b64url_encode(md, mdlen, out, outlen) > 0)
    {
        rc = 0;
    }

    free(json);
    ag_pub_free(&pub);
    return rc;
}


static int
ag_json_set_str(json_t *obj, const char *name, const char *value)
{
    return json_object_set_new(obj, name, json_string(value));
}


json_t *
ag_jwk_public(EVP_PKEY *key, const char *kid)
{
    int        rc;
    json_t    *jwk;
    ag_pub_t   pub;
    ag_alg_t   alg;

    if (ag_key_kind(key, &alg) != 0 || ag_pub_get(key, &pub) != 0) {
        return NULL;
    }

    jwk = json_object();
    if (jwk == NULL) {
        ag_pub_free(&pub);
        return NULL;
    }

    rc = ag_json_set_str(jwk, "kty", pub.kty);

    if (alg == AG_ALG_RS256) {
        rc |= ag_json_set_str(jwk, "n", pub.x);
        rc |= ag_json_set_str(jwk, "e", pub.y);

    } else {
        rc |= ag_json_set_str(jwk, "crv", pub.crv);
        rc |= ag_json_set_str(jwk, "x", pub.x);
        if (alg == AG_ALG_ES256) {
            rc |= ag_json_set_str(jwk, "y", pub.y);
        }
    }

    if (kid != NULL) {
        rc |= ag_json_set_str(jwk, "kid", kid);
    }

    rc |= ag_json_set_str(jwk, "alg", ag_alg_names[alg]);
    rc |= ag_json_set_str(jwk, "use", "sig");

    ag_pub_free(&pub);

    if (rc != 0) {
        json_decref(jwk);
        return NULL;
    }

    return jwk;
}


/* The signature of data, as JOSE wants it: ECDSA as raw r||s. */
static unsigned char *
ag_evp_sign(EVP_PKEY *key, ag_alg_t alg, const char *data, size_t len,
    size_t *siglen)
{
    int                   ok;
    size_t                n;
    EVP_MD_CTX           *md;
    ECDSA_SIG            *es;
    EVP_PKEY_CTX         *pctx;
    unsigned char        *sig, *raw;
    const BIGNUM         *r, *s;
    const unsigned char  *p;

    n = (size_t) EVP_PKEY_get_size(key);
    md = EVP_MD_CTX_new();
    sig = malloc(n > AG_RAW_SIG_LEN ? n : AG_RAW_SIG_LEN);
    pctx = NULL;

    ok = md != NULL && sig != NULL
         && EVP_DigestSignInit_ex(md, &pctx, alg == AG_ALG_EDDSA ? NULL
                                  : "SHA256", NULL, NULL, key, NULL) == 1
         && (alg != AG_ALG_RS256
             || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1)
         && EVP_DigestSign(md, sig, &n, (const unsigned char *) data, len)
            == 1;

    EVP_MD_CTX_free(md);

    if (!ok) {
        free(sig);
        return NULL;
    }

    if (alg != AG_ALG_ES256) {
        *siglen = n;
        return sig;
    }

    raw = malloc(AG_RAW_SIG_LEN);
    p = sig;
    es = d2i_ECDSA_SIG(NULL, &p, (long) n);
    free(sig);

    ok = 0;
    if (raw != NULL && es != NULL) {
        ECDSA_SIG_get0(es, &r, &s);
        ok = BN_bn2binpad(r, raw, AG_P256_LEN) == AG_P256_LEN
             && BN_bn2binpad(s, raw + AG_P256_LEN, AG_P256_LEN) == AG_P256_LEN;
    }

    ECDSA_SIG_free(es);

    if (!ok) {
        free(raw);
        return NULL;
    }

    *siglen = AG_RAW_SIG_LEN;
    return raw;
}


static json_t *
ag_jwt_sign_header(ag_alg_t alg, const char *kid, const char *typ)
{
    int      rc;
    json_t  *hdr;

    hdr = json_object();
    if (hdr == NULL) {
        return NULL;
    }

    rc = ag_json_set_str(hdr, "alg", ag_alg_names[alg]);
    if (kid != NULL) {
        rc |= ag_json_set_str(hdr, "kid", kid);
    }
    if (typ != NULL) {
        rc |= ag_json_set_str(hdr, "typ", typ);
    }

    if (rc != 0) {
        json_decref(hdr);
        return NULL;
    }

    return hdr;
}


int
ag_jwt_sign(EVP_PKEY *key, const char *kid, const char *typ,
    json_t *claims, char **out, char *err, size_t errlen)
{
    int             rc;
    char           *tok, *h, *c;
    size_t          size, pos, hlen, clen, siglen;
    json_t         *hdr;
    ag_alg_t        alg;
    unsigned char  *sig;

    *out = NULL;

    if (ag_key_kind(key, &alg) != 0) {
        ag_errf(err, errlen, "sign: the key is not Ed25519, P-256 or RSA 2048+");
        return -1;
    }

    if (!json_is_object(claims)) {
        ag_errf(err, errlen, "sign: claims are not a JSON object");
        return -1;
    }

    rc = -1;
    tok = NULL;
    sig = NULL;

    hdr = ag_jwt_sign_header(alg, kid, typ);
    h = hdr ? json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    c = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    if (h == NULL || c == NULL) {
        ag_errf(err, errlen, "sign: cannot encode the header or claims");
        goto done;
    }

    hlen = strlen(h);
    clen = strlen(c);
    size = ag_b64url_len(hlen) + 1 + ag_b64url_len(clen) + 1
           + ag_b64url_len((size_t) EVP_PKEY_get_size(key) + AG_RAW_SIG_LEN)
           + 1;

    tok = malloc(size);
    if (tok == NULL) {
        ag_errf(err, errlen, "out of memory");
        goto done;
    }

    /* the buffer is sized for all three parts, so encoding cannot fail */

    pos = (size_t) ag_b64url_encode((unsigned char *) h, hlen, tok, size);
    tok[pos++] = '.';
    pos += (size_t) ag_b64url_encode((unsigned char *) c, clen, tok + pos,
                                     size - pos);

    ERR_set_mark();
    sig = ag_evp_sign(key, alg, tok, pos, &siglen);
    ERR_pop_to_mark();

    if (sig == NULL) {
        ag_errf(err, errlen, "sign: the signature failed");
        goto done;
    }

    tok[pos++] = '.';
    pos += (size_t) ag_b64url_encode(sig, siglen, tok + pos, size - pos);
    tok[pos] = '\0';

    *out = tok;
    tok = NULL;
    rc = 0;

done:

    free(sig);
    free(tok);
    free(h);
    free(c);
    json_decref(hdr);
    return rc;
}
