/*
 * ag_spiffe: X.509-SVID identities under their own trust domain's bundle.
 * Every key and certificate is generated here at run time.
 */

#include "unit.h"

#include <dirent.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ag_spiffe.h"


#define NOW     1750000000LL
#define HOUR    3600
#define YEAR    (365LL * 24 * HOUR)

#define ID_A    "spiffe://a.example/ns/prod/sa/agent-1"


typedef struct {
    EVP_PKEY  *key;
    X509      *cert;
} ca_t;

typedef struct {
    const char  *cn;
    int          ca;            /* basicConstraints CA:TRUE */
    const char  *uris[4];       /* URI SANs, up to a NULL */
    size_t       uri0_len;      /* length of uris[0] when it holds a NUL */
    const char  *dns;           /* a DNS SAN */
    int          no_san;        /* no subjectAltName at all */
    int64_t      not_before;    /* 0: NOW - HOUR */
    int64_t      not_after;     /* 0: NOW + HOUR */
    const char  *ku;            /* keyUsage; NULL: the usual for CA or leaf */
    const char  *eku;           /* extendedKeyUsage; NULL: clientAuth for leaves */
    const char  *issuer_cn;     /* forge the issuer name */
} spec_t;

typedef struct {
    ca_t                root_a, int_a, root_b, root_c, other;
    ag_spiffe_trust_t  *trust;
    char                dir[64];
} fx_t;


/* --- certificates ----------------------------------------------------------------- */

static void
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION  *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);

    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}


static void
add_san(X509 *x, const spec_t *s)
{
    GENERAL_NAMES   *names = sk_GENERAL_NAME_new_null();
    GENERAL_NAME    *gn;
    ASN1_IA5STRING  *str;
    size_t           len;
    int              i;

    assert_non_null(names);

    for (i = 0; i < 4 && s->uris[i] != NULL; i++) {
        len = (i == 0 && s->uri0_len) ? s->uri0_len : strlen(s->uris[i]);
        str = ASN1_IA5STRING_new();
        assert_int_equal(ASN1_STRING_set(str, s->uris[i], (int) len), 1);
        gn = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(gn, GEN_URI, str);
        sk_GENERAL_NAME_push(names, gn);
    }

    if (s->dns != NULL) {
        str = ASN1_IA5STRING_new();
        assert_int_equal(ASN1_STRING_set(str, s->dns, -1), 1);
        gn = GENERAL_NAME_new();
        GENERAL_NAME_set0_value(gn, GEN_DNS, str);
        sk_GENERAL_NAME_push(names, gn);
    }

    assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0,
                                       X509V3_ADD_DEFAULT), 1);
    GENERAL_NAMES_free(names);
}


/* A certificate for key, issued by `by` (NULL: self-signed). */
static X509 *
make_cert(EVP_PKEY *key, const ca_t *by, const spec_t *s)
{
    X509        *x = X509_new();
    X509_NAME   *name, *iname;
    X509V3_CTX   ctx;
    int64_t      serial;

    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(RAND_bytes((unsigned char *) &serial, sizeof(serial)), 1);
    serial &= INT64_MAX;
    ASN1_INTEGER_set_int64(X509_get_serialNumber(x), serial | 1);

    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *) s->cn, -1, -1, 0);

    if (s->issuer_cn != NULL) {
        iname = X509_NAME_new();
        X509_NAME_add_entry_by_txt(iname, "CN", MBSTRING_ASC,
                                   (const unsigned char *) s->issuer_cn, -1,
                                   -1, 0);
        X509_set_issuer_name(x, iname);
        X509_NAME_free(iname);
    } else {
        X509_set_issuer_name(x, by ? X509_get_subject_name(by->cert) : name);
    }

    ASN1_TIME_set(X509_getm_notBefore(x),
                  (time_t) (s->not_before ? s->not_before : NOW - HOUR));
    ASN1_TIME_set(X509_getm_notAfter(x),
                  (time_t) (s->not_after ? s->not_after : NOW + HOUR));
    assert_int_equal(X509_set_pubkey(x, key), 1);

    X509V3_set_ctx(&ctx, by ? by->cert : x, x, NULL, NULL, 0);
    add_ext(x, &ctx, NID_basic_constraints,
            s->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, &ctx, NID_key_usage, s->ku ? s->ku
            : s->ca ? "critical,keyCertSign,cRLSign"
                    : "critical,digitalSignature,keyEncipherment");
    if (!s->ca || s->eku != NULL) {
        add_ext(x, &ctx, NID_ext_key_usage,
                s->eku ? s->eku : "clientAuth,serverAuth");
    }
    add_ext(x, &ctx, NID_subject_key_identifier, "hash");
    if (by != NULL) {
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    }
    if (!s->no_san && (s->uris[0] != NULL || s->dns != NULL)) {
        add_san(x, s);
    }

    assert_true(X509_sign(x, by ? by->key : key, EVP_sha256()) > 0);
    return x;
}


static EVP_PKEY *
new_key(void)
{
    EVP_PKEY  *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

    assert_non_null(k);
    return k;
}


static void
make_ca(ca_t *ca, const ca_t *by, const char *cn, const char *uri)
{
    spec_t  s;

    memset(&s, 0, sizeof(s));
    s.cn = cn;
    s.ca = 1;
    s.uris[0] = uri;
    s.not_before = NOW - YEAR;
    s.not_after = NOW + YEAR;

    ca->key = new_key();
    ca->cert = make_cert(ca->key, by, &s);
}


static void
free_ca(ca_t *ca)
{
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
}


/* A leaf with the given SPIFFE IDs, issued by `by`. */
static X509 *
leaf(const ca_t *by, const char *uri)
{
    spec_t     s;
    X509      *x;
    EVP_PKEY  *k = new_key();

    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = uri;
    x = make_cert(k, by, &s);
    EVP_PKEY_free(k);
    return x;
}


static X509 *
leaf_spec(const ca_t *by, const spec_t *s)
{
    X509      *x;
    EVP_PKEY  *k = new_key();

    x = make_cert(k, by, s);
    EVP_PKEY_free(k);
    return x;
}


static char *
write_pem(fx_t *fx, const char *name, X509 *a, X509 *b)
{
    char  *path = malloc(256);
    FILE  *f;

    assert_non_null(path);
    snprintf(path, 256, "%s/%s", fx->dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    if (a != NULL) {
        assert_int_equal(PEM_write_X509(f, a), 1);
    }
    if (b != NULL) {
        assert_int_equal(PEM_write_X509(f, b), 1);
    }
    fclose(f);
    return path;
}


static char *
write_text(fx_t *fx, const char *name, const char *text)
{
    char  *path = malloc(256);
    FILE  *f;

    assert_non_null(path);
    snprintf(path, 256, "%s/%s", fx->dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}


/* --- checks ------------------------------------------------------------------------- */

static void
accepted_at(const fx_t *fx, X509 *x, STACK_OF(X509) *chain, int64_t now,
    const char *want_id)
{
    char  id[AG_SPIFFE_ID_MAX + 1], err[256];

    err[0] = '\0';
    if (ag_spiffe_verify(fx->trust, x, chain, now, id, sizeof(id), err,
                         sizeof(err)) != 0)
    {
        fail_msg("refused: %s", err);
    }
    assert_string_equal(id, want_id);
    assert_int_equal(ERR_peek_error(), 0);
}


static void
refused_at(const fx_t *fx, X509 *x, STACK_OF(X509) *chain, int64_t now,
    const char *want)
{
    char  id[AG_SPIFFE_ID_MAX + 1], err[256];

    err[0] = '\0';
    strcpy(id, "untouched");
    if (ag_spiffe_verify(fx->trust, x, chain, now, id, sizeof(id), err,
                         sizeof(err)) == 0)
    {
        fail_msg("accepted: %s", id);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
    assert_string_equal(id, "untouched");
    assert_int_equal(ERR_peek_error(), 0);
}


static void
accepted(const fx_t *fx, X509 *x, STACK_OF(X509) *chain, const char *id)
{
    accepted_at(fx, x, chain, NOW, id);
}


static void
refused(const fx_t *fx, X509 *x, STACK_OF(X509) *chain, const char *want)
{
    refused_at(fx, x, chain, NOW, want);
}


/* A leaf under root A with this URI must be refused with `want`. */
static void
refused_uri(const fx_t *fx, const char *uri, const char *want)
{
    X509  *x = leaf(&fx->root_a, uri);

    refused(fx, x, NULL, want);
    X509_free(x);
}


/* --- fixture ------------------------------------------------------------------------ */

/* The fixture's directory holds plain files only. */
static void
remove_dir(const char *dir)
{
    char            path[512];
    DIR            *d;
    struct dirent  *e;

    d = opendir(dir);
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}


static int
teardown(void **state)
{
    fx_t  *fx = *state;

    free_ca(&fx->root_a);
    free_ca(&fx->int_a);
    free_ca(&fx->root_b);
    free_ca(&fx->root_c);
    free_ca(&fx->other);
    ag_spiffe_trust_free(fx->trust);

    remove_dir(fx->dir);

    free(fx);
    return 0;
}


static int
setup(void **state)
{
    char   err[256], *path;
    fx_t  *fx = calloc(1, sizeof(fx_t));

    if (fx == NULL) {
        return -1;
    }
    *state = fx;

    snprintf(fx->dir, sizeof(fx->dir), "%s/agspiffe.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        goto failed;
    }

    make_ca(&fx->root_a, NULL, "Root A", "spiffe://a.example");
    make_ca(&fx->int_a, &fx->root_a, "Intermediate A", "spiffe://a.example");
    make_ca(&fx->root_b, NULL, "Root B", "spiffe://b.example");
    make_ca(&fx->root_c, NULL, "Root C", NULL);
    make_ca(&fx->other, NULL, "Unrelated", NULL);

    fx->trust = ag_spiffe_trust_new();
    if (fx->trust == NULL) {
        goto failed;
    }

    path = write_pem(fx, "a.pem", fx->root_a.cert, NULL);
    if (ag_spiffe_trust_add(fx->trust, "spiffe://a.example", path, err,
                            sizeof(err)) != 0)
    {
        fprintf(stderr, "setup: %s\n", err);
        free(path);
        goto failed;
    }
    free(path);

    path = write_pem(fx, "b.pem", fx->root_b.cert, NULL);
    if (ag_spiffe_trust_add(fx->trust, "spiffe://b.example", path, err,
                            sizeof(err)) != 0)
    {
        fprintf(stderr, "setup: %s\n", err);
        free(path);
        goto failed;
    }
    free(path);

    /* a bundle of two: every certificate in the file is an anchor */
    path = write_pem(fx, "c.pem", fx->other.cert, fx->root_c.cert);
    if (ag_spiffe_trust_add(fx->trust, "spiffe://c.example", path, err,
                            sizeof(err)) != 0)
    {
        fprintf(stderr, "setup: %s\n", err);
        free(path);
        goto failed;
    }
    free(path);

    return 0;

failed:

    teardown(state);
    return -1;
}


/* --- tests ------------------------------------------------------------------------- */

static void
valid_leaf(void **state)
{
    X509  *x;
    fx_t  *fx = *state;

    x = leaf(&fx->root_a, ID_A);
    accepted(fx, x, NULL, ID_A);
    X509_free(x);

    x = leaf(&fx->root_b, "spiffe://b.example/w");
    accepted(fx, x, NULL, "spiffe://b.example/w");
    X509_free(x);

    /* every character the spec allows */
    x = leaf(&fx->root_a, "spiffe://a.example/AZaz09.-_/x..y/.z/z.");
    accepted(fx, x, NULL, "spiffe://a.example/AZaz09.-_/x..y/.z/z.");
    X509_free(x);
}


static void
valid_leaf_with_dns_san(void **state)
{
    spec_t  s;
    X509   *x;
    fx_t   *fx = *state;

    /* other SAN types beside the one URI are fine */
    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = ID_A;
    s.dns = "agent.a.example";
    x = leaf_spec(&fx->root_a, &s);
    accepted(fx, x, NULL, ID_A);
    X509_free(x);
}


static void
intermediate_chain(void **state)
{
    X509            *x;
    STACK_OF(X509)  *chain;
    fx_t            *fx = *state;

    x = leaf(&fx->int_a, ID_A);
    chain = sk_X509_new_null();
    sk_X509_push(chain, fx->int_a.cert);
    accepted(fx, x, chain, ID_A);

    /* the leaf first in the chain, as some TLS stacks hand it over */
    sk_X509_unshift(chain, x);
    accepted(fx, x, chain, ID_A);
    sk_X509_free(chain);

    /* without the intermediate there is no path to the bundle */
    refused(fx, x, NULL, "chain");
    X509_free(x);
}


static void
bundle_of_several_certificates(void **state)
{
    X509  *x;
    fx_t  *fx = *state;

    x = leaf(&fx->root_c, "spiffe://c.example/w");
    accepted(fx, x, NULL, "spiffe://c.example/w");
    X509_free(x);

    x = leaf(&fx->other, "spiffe://c.example/w");
    accepted(fx, x, NULL, "spiffe://c.example/w");
    X509_free(x);
}


/* The essential one: domain B's CA must not vouch for domain A's IDs. */
static void
cross_domain_refused(void **state)
{
    spec_t           s;
    X509            *x;
    STACK_OF(X509)  *chain;
    fx_t            *fx = *state;

    x = leaf(&fx->root_b, ID_A);
    refused(fx, x, NULL, "chain");

    /* handing A's own certificates over as "intermediates" changes nothing */
    chain = sk_X509_new_null();
    sk_X509_push(chain, fx->root_a.cert);
    sk_X509_push(chain, fx->int_a.cert);
    sk_X509_push(chain, fx->root_b.cert);
    refused(fx, x, chain, "chain");
    sk_X509_free(chain);
    X509_free(x);

    /* B's CA forging A's root as the issuer name */
    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = ID_A;
    s.issuer_cn = "Root A";
    x = leaf_spec(&fx->root_b, &s);
    refused(fx, x, NULL, "chain");
    X509_free(x);

    /* an unrelated CA that domain C trusts, claiming A */
    x = leaf(&fx->other, ID_A);
    refused(fx, x, NULL, "chain");
    X509_free(x);

    /* and A's CA claiming B */
    x = leaf(&fx->int_a, "spiffe://b.example/w");
    chain = sk_X509_new_null();
    sk_X509_push(chain, fx->int_a.cert);
    refused(fx, x, chain, "chain");
    sk_X509_free(chain);
    X509_free(x);
}


static void
leaf_as_issuer_refused(void **state)
{
    ca_t             fake;
    X509            *x;
    STACK_OF(X509)  *chain;
    fx_t            *fx = *state;

    /* a valid SVID of A (CA:FALSE) signing another "SVID" */
    fake.key = new_key();
    {
        spec_t  s;

        memset(&s, 0, sizeof(s));
        s.cn = "agent-as-ca";
        s.uris[0] = "spiffe://a.example/w";
        fake.cert = make_cert(fake.key, &fx->root_a, &s);
    }

    x = leaf(&fake, "spiffe://a.example/admin");
    chain = sk_X509_new_null();
    sk_X509_push(chain, fake.cert);
    refused(fx, x, chain, "chain");
    sk_X509_free(chain);
    X509_free(x);
    free_ca(&fake);
}


static void
two_uri_sans_refused(void **state)
{
    spec_t  s;
    X509   *x;
    fx_t   *fx = *state;

    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = ID_A;
    s.uris[1] = "spiffe://a.example/other";
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "2 URI SANs");
    X509_free(x);

    s.uris[1] = "https://a.example/";
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "2 URI SANs");
    X509_free(x);

    s.uris[0] = ID_A;
    s.uris[1] = ID_A;
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "2 URI SANs");
    X509_free(x);
}


static void
no_uri_san_refused(void **state)
{
    spec_t  s;
    X509   *x;
    fx_t   *fx = *state;

    memset(&s, 0, sizeof(s));
    s.cn = "spiffe://a.example/cn";         /* the subject never counts */
    s.dns = "a.example";
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "0 URI SANs");
    X509_free(x);

    memset(&s, 0, sizeof(s));
    s.cn = "spiffe://a.example/cn";
    s.no_san = 1;
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "no subjectAltName");
    X509_free(x);
}


static void
non_spiffe_uri_refused(void **state)
{
    fx_t  *fx = *state;

    refused_uri(fx, "https://a.example/ns/prod", "not a spiffe://");
    refused_uri(fx, "SPIFFE://a.example/x", "not a spiffe://");
    refused_uri(fx, "Spiffe://a.example/x", "not a spiffe://");
    refused_uri(fx, "spiffe:a.example/x", "not a spiffe://");
    refused_uri(fx, "spiffe:/a.example/x", "not a spiffe://");
    refused_uri(fx, "urn:spiffe:a.example", "not a spiffe://");
    refused_uri(fx, " spiffe://a.example/x", "not a spiffe://");
}


static void
malformed_ids_refused(void **state)
{
    fx_t  *fx = *state;

    refused_uri(fx, "spiffe://A.example/x", "trust domain");
    refused_uri(fx, "spiffe://a.Example/x", "trust domain");
    refused_uri(fx, "spiffe://a.example/a%2Fb", "path");
    refused_uri(fx, "spiffe://a%2eexample/x", "trust domain");
    refused_uri(fx, "spiffe://a.example/x/../admin", "segment");
    refused_uri(fx, "spiffe://a.example/..", "segment");
    refused_uri(fx, "spiffe://a.example/./x", "segment");
    refused_uri(fx, "spiffe://a.example/x/", "segment");
    refused_uri(fx, "spiffe://a.example/x//y", "segment");
    refused_uri(fx, "spiffe://a.example//x", "segment");
    refused_uri(fx, "spiffe://a.example/x?y=1", "path");
    refused_uri(fx, "spiffe://a.example/x#frag", "path");
    refused_uri(fx, "spiffe://a.example?x", "trust domain");
    refused_uri(fx, "spiffe://a.example:8443/x", "trust domain");
    refused_uri(fx, "spiffe://user@a.example/x", "trust domain");
    refused_uri(fx, "spiffe://a.example", "no path");
    refused_uri(fx, "spiffe://a.example/", "segment");
    refused_uri(fx, "spiffe:///x", "trust domain");
    refused_uri(fx, "spiffe://", "trust domain");
    refused_uri(fx, "spiffe://a.example/x~y", "path");
    refused_uri(fx, "spiffe://a.example/x y", "path");
    refused_uri(fx, "spiffe://a.example/caf\xc3\xa9", "path");
    refused_uri(fx, "spiffe://[::1]/x", "trust domain");
}


static void
id_length_limits(void **state)
{
    char    uri[AG_SPIFFE_ID_MAX + 2], id[AG_SPIFFE_ID_MAX + 1], err[256];
    size_t  n;
    X509   *x;
    fx_t   *fx = *state;

    /* exactly AG_SPIFFE_ID_MAX bytes: accepted */
    n = (size_t) snprintf(uri, sizeof(uri), "spiffe://a.example/");
    memset(uri + n, 'a', AG_SPIFFE_ID_MAX - n);
    uri[AG_SPIFFE_ID_MAX] = '\0';
    x = leaf(&fx->root_a, uri);
    accepted(fx, x, NULL, uri);

    /* the caller's buffer must hold it */
    assert_int_equal(ag_spiffe_verify(fx->trust, x, NULL, NOW, id,
                                      AG_SPIFFE_ID_MAX, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "buffer"));
    X509_free(x);

    /* one more byte: refused */
    uri[AG_SPIFFE_ID_MAX] = 'a';
    uri[AG_SPIFFE_ID_MAX + 1] = '\0';
    refused_uri(fx, uri, "2048");

    /* a trust domain over 255 bytes */
    n = (size_t) snprintf(uri, sizeof(uri), "spiffe://");
    memset(uri + n, 'd', 256);
    strcpy(uri + n + 256, "/x");
    refused_uri(fx, uri, "trust domain");
}


static void
embedded_nul_refused(void **state)
{
    spec_t  s;
    X509   *x;
    fx_t   *fx = *state;

    /* "spiffe://a.example/x\0.evil" must not be read as the part before NUL */
    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = "spiffe://a.example/x\0.evil";
    s.uri0_len = 26;
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "NUL");
    X509_free(x);
}


static void
validity_period(void **state)
{
    spec_t  s;
    X509   *x;
    fx_t   *fx = *state;

    x = leaf(&fx->root_a, ID_A);
    refused_at(fx, x, NULL, NOW + 2 * HOUR, "expired");
    refused_at(fx, x, NULL, NOW - 2 * HOUR, "not yet valid");
    accepted_at(fx, x, NULL, NOW + HOUR - 1, ID_A);
    X509_free(x);

    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = ID_A;
    s.not_before = NOW - 2 * HOUR;
    s.not_after = NOW - HOUR;
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "expired");
    X509_free(x);

    /* an expired CA: its leaves are refused as well */
    x = leaf(&fx->root_a, ID_A);
    refused_at(fx, x, NULL, NOW + 2 * YEAR, "expired");
    X509_free(x);
}


static void
ca_as_leaf_refused(void **state)
{
    ca_t                r, sub;
    char                err[256], id[AG_SPIFFE_ID_MAX + 1], *path;
    ag_spiffe_trust_t  *t;
    fx_t               *fx = *state;

    /* a CA certificate issued by A's root, with an ID */
    make_ca(&sub, &fx->root_a, "Sub CA", ID_A);
    refused(fx, sub.cert, NULL, "CA");
    free_ca(&sub);

    /* a trust anchor itself, with an ID, presented as a client certificate */
    make_ca(&r, NULL, "Root R", "spiffe://r.example/ca");
    t = ag_spiffe_trust_new();
    path = write_pem(fx, "r.pem", r.cert, NULL);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://r.example", path, err,
                                         sizeof(err)), 0);
    assert_int_equal(ag_spiffe_verify(t, r.cert, NULL, NOW, id, sizeof(id),
                                      err, sizeof(err)), -1);
    assert_non_null(strstr(err, "CA"));
    ag_spiffe_trust_free(t);
    free(path);
    free_ca(&r);
}


static void
leaf_usage_refused(void **state)
{
    spec_t  s;
    X509   *x;
    fx_t   *fx = *state;

    /* CA:FALSE but allowed to sign certificates */
    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = ID_A;
    s.ku = "critical,digitalSignature,keyCertSign";
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "CA");
    X509_free(x);

    /* a server-only certificate is no client identity */
    memset(&s, 0, sizeof(s));
    s.cn = "agent";
    s.uris[0] = ID_A;
    s.eku = "serverAuth";
    x = leaf_spec(&fx->root_a, &s);
    refused(fx, x, NULL, "purpose");
    X509_free(x);
}


static void
unknown_domain_refused(void **state)
{
    fx_t  *fx = *state;

    /* signed by a trusted CA, but its domain has no bundle */
    refused_uri(fx, "spiffe://d.example/x", "not trusted");
    refused_uri(fx, "spiffe://a.example.evil/x", "not trusted");
    refused_uri(fx, "spiffe://example/x", "not trusted");
    refused_uri(fx, "spiffe://a.exampl/x", "not trusted");
}


static void
trust_add_errors(void **state)
{
    char                err[256], *path, *junk;
    ag_spiffe_trust_t  *t;
    fx_t               *fx = *state;

    t = ag_spiffe_trust_new();
    assert_non_null(t);
    path = write_pem(fx, "x.pem", fx->root_a.cert, NULL);

    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://x.example", path, err,
                                         sizeof(err)), 0);
    assert_int_equal(ag_spiffe_trust_count(t), 1);

    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://x.example", path, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "duplicate"));

    assert_int_equal(ag_spiffe_trust_add(t, "x.example", path, err,
                                         sizeof(err)), -1);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://X.example", path, err,
                                         sizeof(err)), -1);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example/", path, err,
                                         sizeof(err)), -1);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example/w", path, err,
                                         sizeof(err)), -1);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://", path, err,
                                         sizeof(err)), -1);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example:443", path,
                                         err, sizeof(err)), -1);
    assert_int_equal(ag_spiffe_trust_add(t, NULL, path, err, sizeof(err)),
                     -1);

    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example",
                                         "/nonexistent.pem", err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));

    junk = write_text(fx, "empty.pem", "");
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example", junk, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "no certificate"));
    free(junk);

    junk = write_text(fx, "text.pem", "not a certificate\n");
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example", junk, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "no certificate"));
    free(junk);

    junk = write_text(fx, "bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"
                      "-----END CERTIFICATE-----\n");
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://y.example", junk, err,
                                         sizeof(err)), -1);
    assert_non_null(strstr(err, "malformed"));
    free(junk);

    assert_int_equal(ag_spiffe_trust_count(t), 1);
    assert_int_equal(ag_spiffe_trust_count(NULL), 0);
    assert_int_equal(ERR_peek_error(), 0);

    ag_spiffe_trust_free(t);
    ag_spiffe_trust_free(NULL);
    free(path);
}


static void
bundle_of_intermediate(void **state)
{
    char                err[256], id[AG_SPIFFE_ID_MAX + 1], *path;
    X509               *x;
    ag_spiffe_trust_t  *t;
    fx_t               *fx = *state;

    /* a bundle listing only an intermediate anchors chains at it */
    t = ag_spiffe_trust_new();
    path = write_pem(fx, "int.pem", fx->int_a.cert, NULL);
    assert_int_equal(ag_spiffe_trust_add(t, "spiffe://a.example", path, err,
                                         sizeof(err)), 0);

    x = leaf(&fx->int_a, ID_A);
    assert_int_equal(ag_spiffe_verify(t, x, NULL, NOW, id, sizeof(id), err,
                                      sizeof(err)), 0);
    X509_free(x);

    /* but a leaf straight under the root is not under that anchor */
    x = leaf(&fx->root_a, ID_A);
    assert_int_equal(ag_spiffe_verify(t, x, NULL, NOW, id, sizeof(id), err,
                                      sizeof(err)), -1);
    X509_free(x);

    ag_spiffe_trust_free(t);
    free(path);
}


static void
null_arguments(void **state)
{
    char   err[256], id[64];
    fx_t  *fx = *state;
    X509  *x = leaf(&fx->root_a, ID_A);

    assert_int_equal(ag_spiffe_verify(fx->trust, NULL, NULL, NOW, id,
                                      sizeof(id), err, sizeof(err)), -1);
    assert_int_equal(ag_spiffe_verify(NULL, x, NULL, NOW, id, sizeof(id), err,
                                      sizeof(err)), -1);
    /* err may be absent */
    assert_int_equal(ag_spiffe_verify(fx->trust, x, NULL, NOW + YEAR * 5, id,
                                      sizeof(id), NULL, 0), -1);
    assert_int_equal(ag_spiffe_verify(fx->trust, x, NULL, NOW, id, sizeof(id),
                                      NULL, 0), 0);
    X509_free(x);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_leaf),
        cmocka_unit_test(valid_leaf_with_dns_san),
        cmocka_unit_test(intermediate_chain),
        cmocka_unit_test(bundle_of_several_certificates),
        cmocka_unit_test(cross_domain_refused),
        cmocka_unit_test(leaf_as_issuer_refused),
        cmocka_unit_test(two_uri_sans_refused),
        cmocka_unit_test(no_uri_san_refused),
        cmocka_unit_test(non_spiffe_uri_refused),
        cmocka_unit_test(malformed_ids_refused),
        cmocka_unit_test(id_length_limits),
        cmocka_unit_test(embedded_nul_refused),
        cmocka_unit_test(validity_period),
        cmocka_unit_test(ca_as_leaf_refused),
        cmocka_unit_test(leaf_usage_refused),
        cmocka_unit_test(unknown_domain_refused),
        cmocka_unit_test(trust_add_errors),
        cmocka_unit_test(bundle_of_intermediate),
        cmocka_unit_test(null_arguments),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
