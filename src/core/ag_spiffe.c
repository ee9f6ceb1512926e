/*
 * SPIFFE X.509-SVIDs (SPEC section 3).
 *
 * The TLS layer may trust many CAs (ssl_client_certificate); a SPIFFE ID is
 * believed only when its certificate chains to the bundle of the trust domain
 * that the ID itself names. Otherwise any domain's CA could mint IDs of every
 * other domain.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ag_spiffe.h"
#include "ag_util.h"


#define AG_SPIFFE_SCHEME      "spiffe://"
#define AG_SPIFFE_SCHEME_LEN  (sizeof(AG_SPIFFE_SCHEME) - 1)
#define AG_SPIFFE_DOMAIN_MAX  255


typedef struct {
    char        *domain;        /* without the scheme: "example.org" */
    size_t       len;
    X509_STORE  *store;
} ag_spiffe_domain_t;

struct ag_spiffe_trust_s {
    ag_spiffe_domain_t  *domains;
    size_t               ndomains;
    size_t               nalloc;
};


/* --- SPIFFE ID syntax (SPIFFE-ID specification, section 2) ------------------ */

static int
ag_spiffe_domain_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '.' || c == '-' || c == '_';
}


static int
ag_spiffe_path_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}


/*
 * Check "spiffe://" domain [path]; *dlen gets the trust domain's length (it
 * starts right after the scheme). The characters allowed leave no room for a
 * port, userinfo, query, fragment or percent-encoding.
 */
static int
ag_spiffe_parse(const char *id, size_t len, int need_path, size_t *dlen,
    char *err, size_t errlen)
{
    size_t       i, seg;
    const char  *p;

    if (len > AG_SPIFFE_ID_MAX) {
        ag_errf(err, errlen, "SPIFFE ID is over %d bytes",
                      AG_SPIFFE_ID_MAX);
        return -1;
    }

    if (len < AG_SPIFFE_SCHEME_LEN
        || memcmp(id, AG_SPIFFE_SCHEME, AG_SPIFFE_SCHEME_LEN) != 0)
    {
        ag_errf(err, errlen, "not a spiffe:// URI");
        return -1;
    }

    p = id + AG_SPIFFE_SCHEME_LEN;
    len -= AG_SPIFFE_SCHEME_LEN;

    for (i = 0; i < len && p[i] != '/'; i++) {
        if (!ag_spiffe_domain_char((unsigned char) p[i])) {
            ag_errf(err, errlen, "SPIFFE trust domain has a character "
                          "other than a-z, 0-9, '.', '-', '_'");
            return -1;
        }
    }

    if (i == 0 || i > AG_SPIFFE_DOMAIN_MAX) {
        ag_errf(err, errlen, "SPIFFE trust domain is empty or over %d "
                      "bytes", AG_SPIFFE_DOMAIN_MAX);
        return -1;
    }

    *dlen = i;

    if (i == len) {
        if (need_path) {
            ag_errf(err, errlen, "SPIFFE ID has no path");
            return -1;
        }
        return 0;
    }

    if (!need_path) {
        ag_errf(err, errlen, "SPIFFE trust domain has a path");
        return -1;
    }

    /* each "/segment": non-empty, not "." or "..", only unreserved chars */

    while (i < len) {
        i++;                            /* the '/' */
        seg = i;

        while (i < len && p[i] != '/') {
            if (!ag_spiffe_path_char((unsigned char) p[i])) {
                ag_errf(err, errlen, "SPIFFE ID path has a character "
                              "other than A-Z, a-z, 0-9, '.', '-', '_'");
                return -1;
            }
            i++;
        }

        if (i == seg
            || (i - seg == 1 && p[seg] == '.')
            || (i - seg == 2 && p[seg] == '.' && p[seg + 1] == '.'))
        {
            ag_errf(err, errlen, "SPIFFE ID path has an empty, \".\" or "
                          "\"..\" segment");
            return -1;
        }
    }

    return 0;
}


/* --- trust domains and their bundles ------------------------------------------- */

ag_spiffe_trust_t *
ag_spiffe_trust_new(void)
{
    return calloc(1, sizeof(ag_spiffe_trust_t));
}


void
ag_spiffe_trust_free(ag_spiffe_trust_t *t)
{
    size_t  i;

    if (t == NULL) {
        return;
    }

    for (i = 0; i < t->ndomains; i++) {
        free(t->domains[i].domain);
        X509_STORE_free(t->domains[i].store);
    }

    free(t->domains);
    free(t);
}


size_t
ag_spiffe_trust_count(const ag_spiffe_trust_t *t)
{
    return t == NULL ? 0 : t->ndomains;
}


static const ag_spiffe_domain_t *
ag_spiffe_find(const ag_spiffe_trust_t *t, const char *domain, size_t len)
{
    size_t  i;

    for (i = 0; i < t->ndomains; i++) {
        if (t->domains[i].len == len
            && memcmp(t->domains[i].domain, domain, len) == 0)
        {
            return &t->domains[i];
        }
    }

    return NULL;
}


/* A store holding every certificate of a PEM file as a trust anchor. */
static X509_STORE *
ag_spiffe_load_bundle(const char *path, char *err, size_t errlen)
{
    int           n;
    BIO          *bio;
    X509         *x;
    X509_STORE   *store;
    unsigned long e;

    bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        ag_errf(err, errlen, "cannot open %s", path);
        return NULL;
    }

    store = X509_STORE_new();
    if (store == NULL) {
        ag_errf(err, errlen, "out of memory");
        BIO_free(bio);
        return NULL;
    }

    /*
     * A bundle's certificates are the domain's trust anchors, whatever they
     * are (SPIFFE Trust Domain and Bundle, section 4.1): a chain may end at an
     * intermediate that the bundle lists, as go-spiffe and SPIRE allow.
     */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);

    for (n = 0; /* void */; n++) {
        x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL) {
            break;
        }
        if (X509_STORE_add_cert(store, x) != 1) {
            X509_free(x);
            ag_errf(err, errlen, "%s: cannot add certificate %d", path,
                          n + 1);
            goto failed;
        }
        X509_free(x);
    }

    /* the loop ends at end of file (no more PEM start line) or at garbage */

    e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM
                    && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
    {
        ag_errf(err, errlen, "%s: certificate %d is malformed", path,
                      n + 1);
        goto failed;
    }

    if (n == 0) {
        ag_errf(err, errlen, "%s: no certificate", path);
        goto failed;
    }

    BIO_free(bio);
    return store;

failed:

    BIO_free(bio);
    X509_STORE_free(store);
    return NULL;
}


int
ag_spiffe_trust_add(ag_spiffe_trust_t *t, const char *domain,
    const char *pem_path, char *err, size_t errlen)
{
    char                *name;
    size_t               dlen, n;
    const char          *dname;
    X509_STORE          *store;
    ag_spiffe_domain_t  *domains;

    if (t == NULL || domain == NULL || pem_path == NULL) {
        ag_errf(err, errlen, "SPIFFE trust needs a domain and a bundle");
        return -1;
    }

    if (ag_spiffe_parse(domain, strlen(domain), 0, &dlen, err, errlen) != 0) {
        return -1;
    }

    dname = domain + AG_SPIFFE_SCHEME_LEN;

    if (ag_spiffe_find(t, dname, dlen) != NULL) {
        ag_errf(err, errlen, "duplicate SPIFFE trust domain %s", domain);
        return -1;
    }

    if (t->ndomains == t->nalloc) {
        n = t->nalloc ? t->nalloc * 2 : 4;
        domains = realloc(t->domains, n * sizeof(ag_spiffe_domain_t));
        if (domains == NULL) {
            ag_errf(err, errlen, "out of memory");
            return -1;
        }
        t->domains = domains;
        t->nalloc = n;
    }

    ERR_set_mark();
    store = ag_spiffe_load_bundle(pem_path, err, errlen);
    ERR_pop_to_mark();

    if (store == NULL) {
        return -1;
    }

    name = strndup(dname, dlen);
    if (name == NULL) {
        ag_errf(err, errlen, "out of memory");
        X509_STORE_free(store);
        return -1;
    }

    t->domains[t->ndomains].domain = name;
    t->domains[t->ndomains].len = dlen;
    t->domains[t->ndomains].store = store;
    t->ndomains++;

    return 0;
}


/* --- verification --------------------------------------------------------- */

/* A copy of the one URI SAN of the certificate; *len its length. */
static char *
ag_spiffe_uri(X509 *leaf, size_t *len, char *err, size_t errlen)
{
    int                      i, crit, n;
    char                    *copy;
    const char              *uri;
    GENERAL_NAME            *gn;
    GENERAL_NAMES           *names;
    const ASN1_IA5STRING    *s;

    names = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
    if (names == NULL) {
        ag_errf(err, errlen, crit == -2
                      ? "certificate has several subjectAltName extensions"
                      : "certificate has no subjectAltName");
        return NULL;
    }

    n = 0;
    uri = NULL;

    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI) {
            continue;
        }

        n++;
        s = gn->d.uniformResourceIdentifier;
        uri = (const char *) ASN1_STRING_get0_data(s);
        *len = (size_t) ASN1_STRING_length(s);
    }

    /* uri points into the decoded names: copy it out before freeing them */

    if (n != 1) {
        ag_errf(err, errlen, "certificate has %d URI SANs, not one", n);
        GENERAL_NAMES_free(names);
        return NULL;
    }

    copy = (*len <= AG_SPIFFE_ID_MAX && memchr(uri, '\0', *len) == NULL)
           ? strndup(uri, *len) : NULL;
    GENERAL_NAMES_free(names);

    if (copy == NULL) {
        ag_errf(err, errlen, "certificate URI SAN is over %d bytes or "
                      "holds a NUL", AG_SPIFFE_ID_MAX);
    }

    return copy;
}


static int
ag_spiffe_chain(X509_STORE *store, X509 *leaf, STACK_OF(X509) *chain,
    int64_t now, char *err, size_t errlen)
{
    int                  rc;
    X509_STORE_CTX      *ctx;
    X509_VERIFY_PARAM   *param;

    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, store, leaf, chain) != 1) {
        ag_errf(err, errlen, "out of memory");
        X509_STORE_CTX_free(ctx);
        return -1;
    }

    param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t) now);

    if (X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        ag_errf(err, errlen, "cannot set the certificate purpose");
        X509_STORE_CTX_free(ctx);
        return -1;
    }

    rc = X509_verify_cert(ctx);
    if (rc != 1) {
        ag_errf(err, errlen, "certificate does not chain to its trust "
                      "domain's bundle: %s", X509_verify_cert_error_string(
                          X509_STORE_CTX_get_error(ctx)));
    }

    X509_STORE_CTX_free(ctx);
    return rc == 1 ? 0 : -1;
}


/* An X509-SVID leaf is no CA and cannot sign certificates or CRLs. */
static int
ag_spiffe_leaf_ok(X509 *leaf, char *err, size_t errlen)
{
    if (X509_check_ca(leaf) != 0
        || (X509_get_key_usage(leaf) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
    {
        ag_errf(err, errlen, "client certificate is a CA certificate");
        return -1;
    }

    return 0;
}


int
ag_spiffe_verify(const ag_spiffe_trust_t *t, X509 *leaf,
    STACK_OF(X509) *chain, int64_t now, char *id, size_t idlen, char *err,
    size_t errlen)
{
    int                        rc;
    char                      *uri;
    size_t                     len, dlen;
    const ag_spiffe_domain_t  *d;

    if (t == NULL || leaf == NULL || id == NULL) {
        ag_errf(err, errlen, "no client certificate");
        return -1;
    }

    ERR_set_mark();

    rc = -1;
    len = 0;
    uri = ag_spiffe_uri(leaf, &len, err, errlen);
    if (uri == NULL) {
        goto done;
    }

    if (ag_spiffe_parse(uri, len, 1, &dlen, err, errlen) != 0) {
        goto done;
    }

    d = ag_spiffe_find(t, uri + AG_SPIFFE_SCHEME_LEN, dlen);
    if (d == NULL) {
        ag_errf(err, errlen, "SPIFFE trust domain is not trusted");
        goto done;
    }

    if (ag_spiffe_leaf_ok(leaf, err, errlen) != 0
        || ag_spiffe_chain(d->store, leaf, chain, now, err, errlen) != 0)
    {
        goto done;
    }

    if (len + 1 > idlen) {
        ag_errf(err, errlen, "SPIFFE ID does not fit the buffer");
        goto done;
    }

    memcpy(id, uri, len);
    id[len] = '\0';
    rc = 0;

done:

    free(uri);
    ERR_pop_to_mark();
    return rc;
}
