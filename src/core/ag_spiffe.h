/*
 * SPIFFE X.509-SVID identities (SPEC section 3): the one spiffe:// URI SAN of a
 * client certificate, trusted only when the certificate chains to the bundle of
 * the trust domain that the ID names.
 */

#ifndef AG_SPIFFE_H
#define AG_SPIFFE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

#define AG_SPIFFE_ID_MAX  2048

typedef struct ag_spiffe_trust_s  ag_spiffe_trust_t;

ag_spiffe_trust_t *ag_spiffe_trust_new(void);
void ag_spiffe_trust_free(ag_spiffe_trust_t *t);

/* Add the CA bundle (PEM file, one or more certificates) of a trust domain,
   given as "spiffe://example.org". Fails on a duplicate domain, a malformed
   domain, or a file with no certificate. */
int ag_spiffe_trust_add(ag_spiffe_trust_t *t, const char *domain,
    const char *pem_path, char *err, size_t errlen);

size_t ag_spiffe_trust_count(const ag_spiffe_trust_t *t);

/*
 * The SPIFFE ID of `leaf`: exactly one URI SAN, and it must be a well-formed
 * spiffe:// ID (lower-case trust domain, non-empty path, no query, fragment,
 * port, userinfo, "." or ".." segments, no percent-encoding). The leaf (with
 * the untrusted intermediates in `chain`, which may be NULL) must verify
 * against the bundle of that ID's trust domain at time `now`, whatever else
 * the TLS layer trusted. Writes the ID NUL-terminated into id (AG_SPIFFE_ID_MAX).
 * Returns 0, or -1 with err.
 */
int ag_spiffe_verify(const ag_spiffe_trust_t *t, X509 *leaf,
    STACK_OF(X509) *chain, int64_t now, char *id, size_t idlen, char *err,
    size_t errlen);

#endif /* AG_SPIFFE_H */
