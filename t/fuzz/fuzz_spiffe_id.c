/*
 * The SPIFFE ID parser behind ag_spiffe_verify (and ag_spiffe_trust_add's
 * trust domain parser), reached with the fuzzer writing the URI SAN itself:
 * every input becomes a certificate, really signed, and is verified against
 * the trust set of spiffe://a.example and spiffe://b.example.
 *
 * Input: FLAGS URI ['\n' URI2]
 *   FLAGS & 3    the issuer: 0 CA a, 1 CA b, 2 none (self-signed),
 *                3 CA a, but the certificate is itself a CA
 *   FLAGS & 4    URI2 is a second URI SAN
 *   FLAGS & 8    a DNS SAN too
 *   FLAGS & 16   URI is also offered to ag_spiffe_trust_add as a domain
 *
 * Oracle: the certificate is accepted exactly when the reference says the
 * URI is a well-formed SPIFFE ID, it is the only URI SAN, the certificate
 * is no CA, and the ID's trust domain is the one whose CA signed it; the ID
 * returned is the URI. A domain is accepted by ag_spiffe_trust_add exactly
 * when it is "spiffe://" and a well-formed trust domain, without a path.
 */

#include <openssl/err.h>

#include "fuzz.h"


static const ag_fuzz_spiffe_fx_t  *ag_fuzz_fx;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    ag_fuzz_fx = ag_fuzz_spiffe_fixture();
    return 0;
}


/* A domain for ag_spiffe_trust_add: the reference's trust domain rule, and
   nothing after it. */
static void
ag_fuzz_domain(const char *uri, size_t len)
{
    int                 rc, want;
    char               *dom, err[256];
    size_t              i;
    ag_spiffe_trust_t  *t;

    if (memchr(uri, '\0', len) != NULL) {
        return;
    }

    want = len > 9 && len - 9 <= 255 && memcmp(uri, "spiffe://", 9) == 0;
    for (i = 9; want && i < len; i++) {
        want = (uri[i] >= 'a' && uri[i] <= 'z')
               || (uri[i] >= '0' && uri[i] <= '9') || uri[i] == '.'
               || uri[i] == '-' || uri[i] == '_';
    }

    dom = ag_fuzz_strndup(uri, len);
    t = ag_spiffe_trust_new();
    if (t == NULL) {
        free(dom);
        return;
    }
    rc = ag_spiffe_trust_add(t, dom, ag_fuzz_fx->pem_a, err, sizeof(err));
    if ((rc == 0) != want) {
        ag_fuzz_fail("trust domain \"%s\": %s, reference says %s", dom,
                     rc == 0 ? "accepted" : err, want ? "good" : "bad");
    }
    ag_fuzz_assert(ag_spiffe_trust_count(t) == (size_t) (rc == 0));
    ag_spiffe_trust_free(t);
    free(dom);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int           flags, rc, want, issuer;
    char          id[AG_SPIFFE_ID_MAX + 1], err[256];
    size_t        n, dlen, ulen[2];
    X509         *x, *by;
    EVP_PKEY     *by_key;
    const char   *uri[2];

    if (size < 1) {
        return 0;
    }

    flags = data[0];
    issuer = flags & 3;

    uri[0] = (const char *) data + 1;
    ag_fuzz_split(uri[0], size - 1, '\n', &ulen[0], &uri[1], &ulen[1]);
    n = (flags & 4) ? 2 : 1;
    if (n == 1) {
        ulen[0] = size - 1;         /* the whole rest, newlines and all */
    }

    by = (issuer == 1) ? ag_fuzz_fx->ca_b
         : (issuer == 2) ? NULL : ag_fuzz_fx->ca_a;
    by_key = (issuer == 1) ? ag_fuzz_fx->ca_b_key
             : (issuer == 2) ? NULL : ag_fuzz_fx->ca_a_key;

    x = ag_fuzz_cert(ag_fuzz_fx->leaf_key, by, by_key, "fuzz-leaf", uri, ulen,
                     n, issuer == 3, (flags & 8) ? "leaf.example" : NULL);
    if (x == NULL) {
        ERR_clear_error();
        return 0;
    }

    rc = ag_spiffe_verify(ag_fuzz_fx->trust, x, NULL, AG_FUZZ_NOW, id,
                          sizeof(id), err, sizeof(err));

    dlen = 0;
    want = n == 1 && issuer < 2
           && memchr(uri[0], '\0', ulen[0]) == NULL
           && ag_fuzz_spiffe_id_ok(uri[0], ulen[0], &dlen)
           && dlen == 9
           && memcmp(uri[0] + 9, issuer == 1 ? "b.example" : "a.example", 9)
              == 0;

    if (ag_fuzz_debug()) {
        fprintf(stderr, "spiffe: %s (reference: %s)\n", rc == 0 ? id : err,
                want ? "accept" : "refuse");
    }

    if ((rc == 0) != want) {
        ag_fuzz_fail("SAN \"%.*s\" (issuer %d, %zu URIs): %s, reference "
                     "says %s", (int) ulen[0], uri[0], issuer, n,
                     rc == 0 ? "accepted" : err, want ? "accept" : "refuse");
    }
    if (rc == 0) {
        ag_fuzz_assert(strlen(id) == ulen[0]
                       && memcmp(id, uri[0], ulen[0]) == 0);
    }
    ag_fuzz_assert(ERR_peek_error() == 0);

    X509_free(x);

    if (flags & 16) {
        ag_fuzz_domain(uri[0], ulen[0]);
        ERR_clear_error();
    }

    return 0;
}
