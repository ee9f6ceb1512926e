/*
 * ag_spiffe_verify on a client certificate from DER bytes (what the TLS
 * layer hands over: any certificate that a CA nginx trusts signed, including
 * one that names another trust domain). The trust set has
 * spiffe://a.example and spiffe://b.example, each with its own CA whose key
 * is derived from a fixed label, so that seed certificates from
 * t/fuzz/gen_seeds.c chain and mutations of them reach every check.
 *
 * Input: DER certificates back to back: the leaf, then up to 4 untrusted
 * intermediates.
 *
 * Oracles on success: the ID is the leaf's one URI SAN, well-formed by the
 * reference syntax, of a trusted domain, NUL-terminated; the leaf is not a
 * CA; the leaf's signature is by its domain's CA key or by an intermediate
 * of the chain.
 */

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "fuzz.h"


#define AG_FUZZ_MAX_CHAIN  4


static const ag_fuzz_spiffe_fx_t  *ag_fuzz_fx;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    ag_fuzz_fx = ag_fuzz_spiffe_fixture();
    return 0;
}


/* The one URI SAN of x, or NULL. */
static const ASN1_IA5STRING *
ag_fuzz_uri(X509 *x, GENERAL_NAMES **names)
{
    int                    i, n;
    GENERAL_NAME          *gn;
    const ASN1_IA5STRING  *uri;

    *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    uri = NULL;
    for (i = 0, n = 0; *names != NULL && i < sk_GENERAL_NAME_num(*names); i++) {
        gn = sk_GENERAL_NAME_value(*names, i);
        if (gn->type == GEN_URI) {
            uri = gn->d.uniformResourceIdentifier;
            n++;
        }
    }
    return n == 1 ? uri : NULL;
}


static void
ag_fuzz_accepted(X509 *leaf, STACK_OF(X509) *chain, const char *id)
{
    int                    i, signed_ok;
    size_t                 len, dlen;
    EVP_PKEY              *ca;
    GENERAL_NAMES         *names;
    const ASN1_IA5STRING  *uri;

    len = strlen(id);
    ag_fuzz_assert(ag_fuzz_spiffe_id_ok(id, len, &dlen));
    ag_fuzz_assert(dlen == 9 && (memcmp(id + 9, "a.example", 9) == 0
                                 || memcmp(id + 9, "b.example", 9) == 0));

    uri = ag_fuzz_uri(leaf, &names);
    ag_fuzz_assert(uri != NULL);
    ag_fuzz_assert((size_t) ASN1_STRING_length(uri) == len
                   && memcmp(ASN1_STRING_get0_data(uri), id, len) == 0);
    GENERAL_NAMES_free(names);

    ag_fuzz_assert(X509_check_ca(leaf) == 0);

    ca = X509_get0_pubkey(id[9] == 'a' ? ag_fuzz_fx->ca_a : ag_fuzz_fx->ca_b);
    signed_ok = X509_verify(leaf, ca) == 1;
    for (i = 0; !signed_ok && chain != NULL && i < sk_X509_num(chain); i++) {
        signed_ok = X509_verify(leaf, X509_get0_pubkey(sk_X509_value(chain, i)))
                    == 1;
    }
    ag_fuzz_assert(signed_ok);
    ERR_clear_error();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    char                  id[AG_SPIFFE_ID_MAX + 1], err[256];
    X509                 *leaf, *x;
    const unsigned char  *p, *end;
    STACK_OF(X509)       *chain;

    p = data;
    end = data + size;

    leaf = d2i_X509(NULL, &p, (long) size);
    if (leaf == NULL) {
        ERR_clear_error();
        return 0;
    }

    chain = NULL;
    while (p < end) {
        x = d2i_X509(NULL, &p, (long) (end - p));
        if (x == NULL) {
            break;
        }
        if (chain == NULL) {
            chain = sk_X509_new_null();
        }
        if (chain == NULL || sk_X509_num(chain) == AG_FUZZ_MAX_CHAIN
            || !sk_X509_push(chain, x))
        {
            X509_free(x);
            break;
        }
    }
    ERR_clear_error();

    strcpy(id, "untouched");
    err[0] = '\0';
    rc = ag_spiffe_verify(ag_fuzz_fx->trust, leaf, chain, AG_FUZZ_NOW, id,
                          sizeof(id), err, sizeof(err));

    if (ag_fuzz_debug()) {
        fprintf(stderr, "spiffe: %s\n", rc == 0 ? id : err);
    }

    if (rc == 0) {
        ag_fuzz_accepted(leaf, chain, id);
    } else {
        ag_fuzz_assert(err[0] != '\0');
        ag_fuzz_assert(strcmp(id, "untouched") == 0);
    }

    /* the engine leaves the error queue as it found it */
    ag_fuzz_assert(ERR_peek_error() == 0);

    sk_X509_pop_free(chain, X509_free);
    X509_free(leaf);
    return 0;
}
