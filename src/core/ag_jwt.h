/*
 * JWS (compact JWT) verification and signing with OpenSSL EVP, and JWKS files
 * (SPEC section 3). ES256, EdDSA (Ed25519) and RS256 only.
 */

#ifndef AG_JWT_H
#define AG_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

#define AG_JWT_MAX_LEN      8192    /* longer tokens are refused unread */
#define AG_JWT_SKEW         60      /* seconds of clock skew for exp, nbf, iat */

typedef enum {
    AG_JWT_OK = 0,
    AG_JWT_TOO_LARGE,       /* over AG_JWT_MAX_LEN */
    AG_JWT_MALFORMED,       /* segments, base64url, JSON, types */
    AG_JWT_BAD_ALG,         /* none, HS*, unknown, or not the key's algorithm */
    AG_JWT_BAD_HEADER,      /* unknown crit, forbidden typ */
    AG_JWT_UNTRUSTED,       /* iss not trusted, or no key for kid */
    AG_JWT_BAD_SIGNATURE,
    AG_JWT_EXPIRED,         /* exp missing or past */
    AG_JWT_NOT_YET_VALID,   /* nbf or iat in the future */
    AG_JWT_BAD_AUDIENCE
} ag_jwt_status_t;

typedef struct ag_jwks_s   ag_jwks_t;
typedef struct ag_trust_s  ag_trust_t;

/* A JWKS document ({"keys": [...]}) of public keys: EC P-256, OKP Ed25519, RSA
   (2048 bits or more). Keys without "kid" are allowed. */
ag_jwks_t *ag_jwks_parse(const char *data, size_t len, char *err, size_t errlen);
ag_jwks_t *ag_jwks_load(const char *path, char *err, size_t errlen);
void ag_jwks_free(ag_jwks_t *jwks);
size_t ag_jwks_count(const ag_jwks_t *jwks);

/* The set of trusted issuers, each with its JWKS. */
ag_trust_t *ag_trust_new(void);
/* Takes ownership of jwks, also on failure. Fails on a duplicate issuer. */
int ag_trust_add(ag_trust_t *t, const char *iss, ag_jwks_t *jwks, char *err,
    size_t errlen);
void ag_trust_free(ag_trust_t *t);

/*
 * Verify a compact JWS from a trusted issuer: size, three base64url segments,
 * header (alg in ES256/EdDSA/RS256 and fitting the key that kid names; without
 * kid only an issuer with exactly one fitting key; jwk/jku/x5u/x5c never used;
 * unknown crit refused; typ beginning with "agentgov-" refused, since those
 * are the gateway's own tokens), signature (ECDSA as raw r||s with r, s in
 * [1, n-1]), claims (iss trusted, exp required, nbf and iat honoured with
 * AG_JWT_SKEW, aud holding `audience`).
 * On success *claims is a new reference the caller must json_decref.
 * On failure err holds a message safe to show (never the token).
 */
ag_jwt_status_t ag_jwt_verify(const ag_trust_t *t, const char *tok, size_t len,
    const char *audience, int64_t now, json_t **claims, char *err,
    size_t errlen);

/*
 * Verify a compact JWS that the gateway signed itself (an audit checkpoint)
 * against a JWKS of its public keys: size, segments, header (alg fitting the
 * key that kid names, or without kid the one fitting key; typ exactly `typ`,
 * compared as ag_jwt_verify compares media types), signature. No claim is
 * checked: what the payload must say is the caller's business. On success
 * *payload (if not NULL) is a new reference the caller must json_decref.
 */
ag_jwt_status_t ag_jws_verify_jwks(const ag_jwks_t *jwks, const char *tok,
    size_t len, const char *typ, json_t **payload, char *err, size_t errlen);

const char *ag_jwt_status_name(ag_jwt_status_t s);

/* PEM private key (Ed25519, P-256 or RSA 2048+). */
EVP_PKEY *ag_key_load_private(const char *path, char *err, size_t errlen);

/* The JWS alg a key signs with ("EdDSA", "ES256", "RS256"), or NULL. */
const char *ag_key_alg(EVP_PKEY *key);

/* RFC 7638 thumbprint of the public key, base64url, into out (>= 44 bytes). */
int ag_key_thumbprint(EVP_PKEY *key, char *out, size_t outlen);

/* The public JWK of a key ({"kty", ..., "kid", "alg", "use": "sig"}). */
json_t *ag_jwk_public(EVP_PKEY *key, const char *kid);

/*
 * Sign claims into a compact JWS. kid and typ may be NULL (omitted).
 * *out is malloc'd and NUL-terminated. Returns 0, or -1 with err.
 */
int ag_jwt_sign(EVP_PKEY *key, const char *kid, const char *typ,
    json_t *claims, char **out, char *err, size_t errlen);

/* base64url without padding. Return the output length, or -1. */
long ag_b64url_encode(const unsigned char *in, size_t len, char *out,
    size_t outlen);
long ag_b64url_decode(const char *in, size_t len, unsigned char *out,
    size_t outlen);

#endif /* AG_JWT_H */
