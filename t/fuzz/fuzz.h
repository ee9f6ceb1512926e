/*
 * Shared by the libFuzzer targets (t/fuzz/fuzz_*.c), their replay driver and
 * the seed generator: the fixed clock, fixtures (keys, JWT trust set, SPIFFE
 * trust set) and the oracle helpers.
 *
 * Keys are derived at start-up from fixed labels (EC P-256 and Ed25519 from
 * SHA-256 of the label), so that a token or certificate written into the
 * corpus verifies again on the next run and a crash file stays a crash file.
 * No key material is stored in the tree. RSA keys cannot be derived that
 * cheaply and are generated afresh at every start.
 */

#ifndef AG_FUZZ_H
#define AG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ag_jwt.h"
#include "ag_policy.h"
#include "ag_spiffe.h"


#define AG_FUZZ_NOW    1750000000LL        /* 2025-06-15T15:06:40Z */
#define AG_FUZZ_AUD    "https://gw.example"
#define AG_FUZZ_ISS    "https://idp.example"
#define AG_FUZZ_ISS2   "https://other.example"
#define AG_FUZZ_SKEW   60


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* An oracle failed: print and abort, so that libFuzzer (or the replay
   driver) records the input. */
void ag_fuzz_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

#define ag_fuzz_assert(cond)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            ag_fuzz_fail("%s:%d: %s", __FILE__, __LINE__, #cond);           \
        }                                                                     \
    } while (0)

/* AG_FUZZ_DEBUG is set: targets may say what they do on stderr. */
int ag_fuzz_debug(void);

/* A NUL-terminated malloc'd copy of len bytes. */
char *ag_fuzz_strndup(const void *p, size_t len);

/* Split [p, p + len) at the first byte c: the head is [p, *hlen), the tail
   what follows the separator. Returns 0 when c does not occur (then the head
   is everything and the tail empty). */
int ag_fuzz_split(const char *p, size_t len, int c, size_t *hlen,
    const char **tail, size_t *tlen);


/* Evaluate a call with the path index, without it, and with a trace: the
   three decisions must be the same (ag_match.h: "Decisions must not
   differ"), and sane. Returns the indexed decision's effect. */
ag_effect_t ag_fuzz_eval(const ag_policy_t *p, const ag_call_t *call);


/* --- keys and signatures --------------------------------------------------- */

/* "EC" (P-256) or "ED25519" derived from label; "RSA" (2048) random. */
EVP_PKEY *ag_fuzz_key(const char *type, const char *label);

/* base64url of n bytes, malloc'd and NUL-terminated */
char *ag_fuzz_b64(const void *p, size_t n);

/* The JWS signature of in, raw bytes into sig (>= 512 bytes); ECDSA as
   JOSE's r||s unless der. Returns the length, or 0. */
size_t ag_fuzz_sign(EVP_PKEY *key, const void *in, size_t len,
    unsigned char *sig, int der);

/* A compact JWS of the given header and payload bytes, signed by key
   (NULL: an empty signature). malloc'd; NULL on failure. */
char *ag_fuzz_jws(EVP_PKEY *key, const void *hdr, size_t hlen,
    const void *payload, size_t plen, int der);


/* --- the JWT trust set ------------------------------------------------------ */

typedef struct {
    EVP_PKEY    *ec1;       /* AG_FUZZ_ISS, kid "ec1" */
    EVP_PKEY    *ed1;       /* AG_FUZZ_ISS, kid "ed1" */
    EVP_PKEY    *rsa1;      /* AG_FUZZ_ISS, kid "rsa1" */
    EVP_PKEY    *other;     /* AG_FUZZ_ISS2, its only key, no kid */
    EVP_PKEY    *evil_ec;   /* trusted by nobody */
    EVP_PKEY    *evil_ed;
    ag_trust_t  *trust;
} ag_fuzz_jwt_fx_t;

/* Build the fixture once; exits on failure. */
const ag_fuzz_jwt_fx_t *ag_fuzz_jwt_fixture(void);

/* {"keys": [...]} of the public JWKs of up to 4 keys (NULL ends), with the
   given kids (NULL: none). malloc'd. */
char *ag_fuzz_jwks_text(EVP_PKEY *const *keys, const char *const *kids,
    size_t n);


/* --- the SPIFFE trust set ----------------------------------------------------- */

typedef struct {
    EVP_PKEY           *ca_a_key;   /* spiffe://a.example */
    X509               *ca_a;
    EVP_PKEY           *ca_b_key;   /* spiffe://b.example */
    X509               *ca_b;
    EVP_PKEY           *leaf_key;
    ag_spiffe_trust_t  *trust;
    char                pem_a[256]; /* CA A's bundle, for ag_spiffe_trust_add */
} ag_fuzz_spiffe_fx_t;

const ag_fuzz_spiffe_fx_t *ag_fuzz_spiffe_fixture(void);

/* A certificate for key with the given URI SANs (n of them, each ulen[i]
   bytes, may hold anything), issued and signed by `by` with by_key (by NULL:
   self-signed with key), valid around AG_FUZZ_NOW. ca makes it a CA
   certificate; dns adds a DNS SAN. NULL on failure. */
X509 *ag_fuzz_cert(EVP_PKEY *key, X509 *by, EVP_PKEY *by_key,
    const char *cn, const char *const *uri, const size_t *ulen, size_t n,
    int ca, const char *dns);

/* The SPIFFE-ID specification's syntax, as a reference: "spiffe://", a
   trust domain of [a-z0-9._-] (1 to 255), then one or more "/" segments of
   [A-Za-z0-9._-], none empty, "." or ".."; at most AG_SPIFFE_ID_MAX bytes.
   *dlen gets the trust domain's length. */
int ag_fuzz_spiffe_id_ok(const char *s, size_t len, size_t *dlen);

#endif /* AG_FUZZ_H */
