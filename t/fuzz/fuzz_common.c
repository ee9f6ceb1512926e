/*
 * Fixtures and helpers shared by the fuzz targets (see fuzz.h).
 */

#include <stdarg.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "fuzz.h"
#include "ag_match.h"


#define AG_FUZZ_YEAR  (365LL * 24 * 3600)


void
ag_fuzz_fail(const char *fmt, ...)
{
    va_list  ap;

    fputs("fuzz oracle failed: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}


int
ag_fuzz_debug(void)
{
    static int  debug = -1;

    if (debug < 0) {
        debug = getenv("AG_FUZZ_DEBUG") != NULL;
    }
    return debug;
}


char *
ag_fuzz_strndup(const void *p, size_t len)
{
    char  *s = malloc(len + 1);

    if (s == NULL) {
        ag_fuzz_fail("out of memory");
    }
    if (len > 0) {
        memcpy(s, p, len);
    }
    s[len] = '\0';
    return s;
}


int
ag_fuzz_split(const char *p, size_t len, int c, size_t *hlen,
    const char **tail, size_t *tlen)
{
    const char  *sep = (len > 0) ? memchr(p, c, len) : NULL;

    if (sep == NULL) {
        *hlen = len;
        *tail = p + len;
        *tlen = 0;
        return 0;
    }
    *hlen = (size_t) (sep - p);
    *tail = sep + 1;
    *tlen = len - *hlen - 1;
    return 1;
}


/* --- policy evaluation ------------------------------------------------------------- */

static void
ag_fuzz_trace(void *data, const ag_rule_t *rule, int matched, const char *why)
{
    size_t  *n = data;

    ag_fuzz_assert(rule != NULL && rule->id != NULL && why != NULL);
    ag_fuzz_assert(matched == 0 || matched == 1);
    (*n)++;
}


static void
ag_fuzz_decision_ok(const ag_decision_t *d)
{
    size_t  i;

    ag_fuzz_assert(d->effect == AG_ALLOW || d->effect == AG_HOLD
                   || d->effect == AG_DENY);
    ag_fuzz_assert(d->reason != NULL);
    ag_fuzz_assert(d->nholds <= AG_MAX_HOLD_RULES);
    ag_fuzz_assert(d->effect == AG_HOLD || d->nholds == 0);
    ag_fuzz_assert(d->effect != AG_HOLD || (d->nholds > 0 && d->rule != NULL));
    for (i = 0; i < d->nholds; i++) {
        ag_fuzz_assert(d->holds[i]->effect == AG_HOLD
                       && d->holds[i]->mode == AG_MODE_ENFORCE);
        ag_fuzz_assert(i == 0 || d->holds[i - 1]->index < d->holds[i]->index);
    }
    if (d->rule != NULL) {
        ag_fuzz_assert(d->rule->effect == d->effect
                       && d->rule->mode == AG_MODE_ENFORCE);
    }
    ag_fuzz_assert((d->monitor_effect == AG_EFFECT_NONE)
                   == (d->monitor_rule == NULL));
    if (d->monitor_rule != NULL) {
        ag_fuzz_assert(d->monitor_effect > d->effect);
        ag_fuzz_assert(d->monitor_rule->mode == AG_MODE_MONITOR
                       && d->monitor_rule->effect == d->monitor_effect);
    }
}


static void
ag_fuzz_decision_eq(const ag_decision_t *a, const ag_decision_t *b,
    const char *what)
{
    size_t  i;

    if (a->effect != b->effect || a->rule != b->rule
        || a->nholds != b->nholds || a->monitor_effect != b->monitor_effect
        || a->monitor_rule != b->monitor_rule
        || strcmp(a->reason, b->reason) != 0)
    {
        ag_fuzz_fail("decisions differ (%s): %s by %s / %s by %s, monitor "
                     "%s by %s / %s by %s", what,
                     ag_effect_name(a->effect), a->rule ? a->rule->id : "-",
                     ag_effect_name(b->effect), b->rule ? b->rule->id : "-",
                     ag_effect_name(a->monitor_effect),
                     a->monitor_rule ? a->monitor_rule->id : "-",
                     ag_effect_name(b->monitor_effect),
                     b->monitor_rule ? b->monitor_rule->id : "-");
    }
    for (i = 0; i < a->nholds; i++) {
        ag_fuzz_assert(a->holds[i] == b->holds[i]);
    }
}


ag_effect_t
ag_fuzz_eval(const ag_policy_t *p, const ag_call_t *call)
{
    int            r1, r2, r3;
    size_t         ntrace;
    ag_decision_t  d1, d2, d3;

    r1 = ag_policy_eval(p, call, &d1, NULL, NULL);
    r2 = ag_policy_eval_unindexed(p, call, &d2, NULL, NULL);
    ntrace = 0;
    r3 = ag_policy_eval(p, call, &d3, ag_fuzz_trace, &ntrace);

    /* -1 only when memory ran out */
    ag_fuzz_assert(r1 == 0 && r2 == 0 && r3 == 0);

    ag_fuzz_decision_ok(&d1);
    ag_fuzz_decision_eq(&d1, &d2, "path index / no index");
    ag_fuzz_decision_eq(&d1, &d3, "no trace / trace");
    ag_fuzz_assert(d1.rule == NULL || ntrace > 0);

    if (ag_fuzz_debug()) {
        fprintf(stderr, "eval: %.*s %.*s %.*s -> %s by %s (%zu traced)\n",
                (int) call->tool.len, call->tool.p ? call->tool.p : "",
                (int) call->method.len, call->method.p ? call->method.p : "",
                (int) call->path.len, call->path.p ? call->path.p : "",
                ag_effect_name(d1.effect), d1.rule ? d1.rule->id : "default",
                ntrace);
    }

    return d1.effect;
}


/* --- keys and signatures --------------------------------------------------------- */

static EVP_PKEY *
ag_fuzz_ec_key(const unsigned char scalar[32])
{
    unsigned char    pub[65];
    BIGNUM          *priv;
    EC_GROUP        *group;
    EC_POINT        *point;
    EVP_PKEY        *pkey;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    OSSL_PARAM_BLD  *bld;

    pkey = NULL;
    params = NULL;
    ctx = NULL;
    bld = NULL;
    point = NULL;

    group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    priv = BN_bin2bn(scalar, 32, NULL);
    if (group == NULL || priv == NULL || BN_is_zero(priv)
        || BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0)
    {
        goto done;
    }

    point = EC_POINT_new(group);
    if (point == NULL
        || EC_POINT_mul(group, point, priv, NULL, NULL, NULL) != 1
        || EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED,
                              pub, sizeof(pub), NULL) != sizeof(pub))
    {
        goto done;
    }

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                           "prime256v1", 0) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                            sizeof(pub)) != 1
        || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
    {
        goto done;
    }

    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(point);
    BN_free(priv);
    EC_GROUP_free(group);
    return pkey;
}


EVP_PKEY *
ag_fuzz_key(const char *type, const char *label)
{
    unsigned char  seed[SHA256_DIGEST_LENGTH];
    char           buf[128];
    EVP_PKEY      *key;

    snprintf(buf, sizeof(buf), "agentgov-fuzz:%s", label);
    SHA256((const unsigned char *) buf, strlen(buf), seed);

    if (strcmp(type, "EC") == 0) {
        key = ag_fuzz_ec_key(seed);
    } else if (strcmp(type, "ED25519") == 0) {
        key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                           sizeof(seed));
    } else {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    }

    if (key == NULL) {
        ag_fuzz_fail("cannot make the %s key %s", type, label);
    }
    return key;
}


char *
ag_fuzz_b64(const void *p, size_t n)
{
    size_t  cap = n / 3 * 4 + 5;
    char   *out = malloc(cap);

    if (out == NULL || ag_b64url_encode(p, n, out, cap) < 0) {
        ag_fuzz_fail("base64url of %zu bytes failed", n);
    }
    return out;
}


size_t
ag_fuzz_sign(EVP_PKEY *key, const void *in, size_t len, unsigned char *sig,
    int der)
{
    unsigned char         buf[1024];
    size_t                n;
    int                   ed;
    EVP_MD_CTX           *md;
    ECDSA_SIG            *es;
    const BIGNUM         *r, *s;
    const unsigned char  *p;

    ed = EVP_PKEY_is_a(key, "ED25519");
    md = EVP_MD_CTX_new();
    n = sizeof(buf);

    if (md == NULL
        || EVP_DigestSignInit_ex(md, NULL, ed ? NULL : "SHA256", NULL, NULL,
                                 key, NULL) != 1
        || EVP_DigestSign(md, buf, &n, in, len) != 1)
    {
        EVP_MD_CTX_free(md);
        return 0;
    }
    EVP_MD_CTX_free(md);

    if (!EVP_PKEY_is_a(key, "EC") || der) {
        memcpy(sig, buf, n);
        return n;
    }

    p = buf;
    es = d2i_ECDSA_SIG(NULL, &p, (long) n);
    if (es == NULL) {
        return 0;
    }
    ECDSA_SIG_get0(es, &r, &s);
    n = (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32)
        ? 64 : 0;
    ECDSA_SIG_free(es);
    return n;
}


char *
ag_fuzz_jws(EVP_PKEY *key, const void *hdr, size_t hlen, const void *payload,
    size_t plen, int der)
{
    unsigned char  sig[1024];
    size_t         n, hl, pl;
    char          *h, *p, *s, *tok;

    h = ag_fuzz_b64(hdr, hlen);
    p = ag_fuzz_b64(payload, plen);
    hl = strlen(h);
    pl = strlen(p);

    tok = malloc(hl + pl + 2 + sizeof(sig) / 3 * 4 + 8);
    if (tok == NULL) {
        ag_fuzz_fail("out of memory");
    }
    memcpy(tok, h, hl);
    tok[hl] = '.';
    memcpy(tok + hl + 1, p, pl);
    tok[hl + 1 + pl] = '.';
    tok[hl + 2 + pl] = '\0';

    n = 0;
    if (key != NULL) {
        n = ag_fuzz_sign(key, tok, hl + 1 + pl, sig, der);
        if (n == 0) {
            ag_fuzz_fail("signing failed");
        }
    }
    s = ag_fuzz_b64(sig, n);
    strcpy(tok + hl + 2 + pl, s);

    free(h);
    free(p);
    free(s);
    return tok;
}


/* --- the JWT trust set ---------------------------------------------------------------- */

char *
ag_fuzz_jwks_text(EVP_PKEY *const *keys, const char *const *kids, size_t n)
{
    size_t   i;
    char    *text;
    json_t  *arr, *doc, *jwk;

    arr = json_array();
    for (i = 0; i < n; i++) {
        jwk = ag_jwk_public(keys[i], kids[i]);
        if (jwk == NULL || json_array_append_new(arr, jwk) != 0) {
            ag_fuzz_fail("cannot make a JWK");
        }
    }
    doc = json_pack("{s:o}", "keys", arr);
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        ag_fuzz_fail("cannot make a JWKS");
    }
    return text;
}


static void
ag_fuzz_trust_add(ag_trust_t *t, const char *iss, EVP_PKEY *const *keys,
    const char *const *kids, size_t n)
{
    char        err[256], *text;
    ag_jwks_t  *jwks;

    text = ag_fuzz_jwks_text(keys, kids, n);
    jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    free(text);
    if (jwks == NULL || ag_trust_add(t, iss, jwks, err, sizeof(err)) != 0) {
        ag_fuzz_fail("fixture: %s", err);
    }
}


const ag_fuzz_jwt_fx_t *
ag_fuzz_jwt_fixture(void)
{
    static ag_fuzz_jwt_fx_t   fx;
    static const char *const  kids[3] = { "ec1", "ed1", "rsa1" };
    static const char *const  nokid[1] = { NULL };
    EVP_PKEY                 *keys[3];

    if (fx.trust != NULL) {
        return &fx;
    }

    fx.ec1 = ag_fuzz_key("EC", "ec1");
    fx.ed1 = ag_fuzz_key("ED25519", "ed1");
    fx.rsa1 = ag_fuzz_key("RSA", "rsa1");
    fx.other = ag_fuzz_key("EC", "other");
    fx.evil_ec = ag_fuzz_key("EC", "evil-ec");
    fx.evil_ed = ag_fuzz_key("ED25519", "evil-ed");

    fx.trust = ag_trust_new();
    if (fx.trust == NULL) {
        ag_fuzz_fail("out of memory");
    }

    keys[0] = fx.ec1;
    keys[1] = fx.ed1;
    keys[2] = fx.rsa1;
    ag_fuzz_trust_add(fx.trust, AG_FUZZ_ISS, keys, kids, 3);
    ag_fuzz_trust_add(fx.trust, AG_FUZZ_ISS2, &fx.other, nokid, 1);

    return &fx;
}


/* --- the SPIFFE trust set ---------------------------------------------------------- */

static void
ag_fuzz_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION  *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);

    if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
        ag_fuzz_fail("cannot add extension %d", nid);
    }
    X509_EXTENSION_free(ext);
}


X509 *
ag_fuzz_cert(EVP_PKEY *key, X509 *by, EVP_PKEY *by_key, const char *cn,
    const char *const *uri, const size_t *ulen, size_t n, int ca,
    const char *dns)
{
    size_t           i;
    X509            *x;
    X509_NAME       *name;
    X509V3_CTX       ctx;
    GENERAL_NAME    *gn;
    GENERAL_NAMES   *names;
    ASN1_IA5STRING  *str;

    x = X509_new();
    if (x == NULL) {
        return NULL;
    }

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), by ? 2 : 1);

    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *) cn, -1, -1, 0);
    X509_set_issuer_name(x, by ? X509_get_subject_name(by) : name);

    ASN1_TIME_set(X509_getm_notBefore(x), (time_t) (AG_FUZZ_NOW - AG_FUZZ_YEAR));
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t) (AG_FUZZ_NOW + AG_FUZZ_YEAR));
    X509_set_pubkey(x, key);

    X509V3_set_ctx(&ctx, by ? by : x, x, NULL, NULL, 0);
    ag_fuzz_ext(x, &ctx, NID_basic_constraints,
                ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    ag_fuzz_ext(x, &ctx, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign"
                   : "critical,digitalSignature,keyEncipherment");
    if (!ca) {
        ag_fuzz_ext(x, &ctx, NID_ext_key_usage, "clientAuth");
    }
    ag_fuzz_ext(x, &ctx, NID_subject_key_identifier, "hash");
    if (by != NULL) {
        ag_fuzz_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    }

    if (n > 0 || dns != NULL) {
        names = sk_GENERAL_NAME_new_null();
        for (i = 0; names != NULL && i < n; i++) {
            str = ASN1_IA5STRING_new();
            gn = GENERAL_NAME_new();
            if (str == NULL || gn == NULL
                || ASN1_STRING_set(str, uri[i], (int) ulen[i]) != 1)
            {
                ag_fuzz_fail("out of memory");
            }
            GENERAL_NAME_set0_value(gn, GEN_URI, str);
            sk_GENERAL_NAME_push(names, gn);
        }
        if (names != NULL && dns != NULL) {
            str = ASN1_IA5STRING_new();
            gn = GENERAL_NAME_new();
            if (str == NULL || gn == NULL
                || ASN1_STRING_set(str, dns, -1) != 1)
            {
                ag_fuzz_fail("out of memory");
            }
            GENERAL_NAME_set0_value(gn, GEN_DNS, str);
            sk_GENERAL_NAME_push(names, gn);
        }
        if (names == NULL
            || X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0,
                                 X509V3_ADD_DEFAULT) != 1)
        {
            ag_fuzz_fail("cannot add subjectAltName");
        }
        GENERAL_NAMES_free(names);
    }

    if (X509_sign(x, by ? by_key : key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}


static char   ag_fuzz_tmpdir[200];
static pid_t  ag_fuzz_tmpdir_pid;


/* at exit of the process that made it: not of a child the replay driver
   forked, which exits while its parent still needs the bundle */
static void
ag_fuzz_cleanup_tmp(void)
{
    char  path[256];

    if (getpid() != ag_fuzz_tmpdir_pid) {
        return;
    }
    snprintf(path, sizeof(path), "%s/a.pem", ag_fuzz_tmpdir);
    unlink(path);
    rmdir(ag_fuzz_tmpdir);
}


static void
ag_fuzz_write_pem(const char *path, X509 *x)
{
    FILE  *f = fopen(path, "w");

    if (f == NULL || PEM_write_X509(f, x) != 1 || fclose(f) != 0) {
        ag_fuzz_fail("cannot write %s", path);
    }
}


const ag_fuzz_spiffe_fx_t *
ag_fuzz_spiffe_fixture(void)
{
    static ag_fuzz_spiffe_fx_t  fx;
    char                        err[256], pem_b[256];
    const char                 *tmp;
    static const char          *uri_a = "spiffe://a.example";
    static const char          *uri_b = "spiffe://b.example";
    size_t                      len_a, len_b;

    if (fx.trust != NULL) {
        return &fx;
    }

    fx.ca_a_key = ag_fuzz_key("EC", "spiffe-ca-a");
    fx.ca_b_key = ag_fuzz_key("EC", "spiffe-ca-b");
    fx.leaf_key = ag_fuzz_key("EC", "spiffe-leaf");

    len_a = strlen(uri_a);
    len_b = strlen(uri_b);
    fx.ca_a = ag_fuzz_cert(fx.ca_a_key, NULL, NULL, "fuzz-ca-a", &uri_a,
                           &len_a, 1, 1, NULL);
    fx.ca_b = ag_fuzz_cert(fx.ca_b_key, NULL, NULL, "fuzz-ca-b", &uri_b,
                           &len_b, 1, 1, NULL);
    if (fx.ca_a == NULL || fx.ca_b == NULL) {
        ag_fuzz_fail("cannot make the SPIFFE CAs");
    }

    tmp = getenv("TMPDIR");
    snprintf(ag_fuzz_tmpdir, sizeof(ag_fuzz_tmpdir), "%s/agfuzz.XXXXXX",
             tmp ? tmp : "/tmp");
    if (mkdtemp(ag_fuzz_tmpdir) == NULL) {
        ag_fuzz_fail("mkdtemp %s failed", ag_fuzz_tmpdir);
    }
    ag_fuzz_tmpdir_pid = getpid();
    atexit(ag_fuzz_cleanup_tmp);

    snprintf(fx.pem_a, sizeof(fx.pem_a), "%s/a.pem", ag_fuzz_tmpdir);
    snprintf(pem_b, sizeof(pem_b), "%s/b.pem", ag_fuzz_tmpdir);
    ag_fuzz_write_pem(fx.pem_a, fx.ca_a);
    ag_fuzz_write_pem(pem_b, fx.ca_b);

    fx.trust = ag_spiffe_trust_new();
    if (fx.trust == NULL
        || ag_spiffe_trust_add(fx.trust, uri_a, fx.pem_a, err, sizeof(err))
           != 0
        || ag_spiffe_trust_add(fx.trust, uri_b, pem_b, err, sizeof(err)) != 0)
    {
        ag_fuzz_fail("fixture: %s", fx.trust ? err : "out of memory");
    }
    unlink(pem_b);

    return &fx;
}


int
ag_fuzz_spiffe_id_ok(const char *s, size_t len, size_t *dlen)
{
    size_t  i, d, seg, nseg;

    if (len > AG_SPIFFE_ID_MAX || len < 9 || memcmp(s, "spiffe://", 9) != 0) {
        return 0;
    }

    for (i = 9; i < len && s[i] != '/'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
              || s[i] == '.' || s[i] == '-' || s[i] == '_'))
        {
            return 0;
        }
    }
    d = i - 9;
    if (d == 0 || d > 255) {
        return 0;
    }
    *dlen = d;

    for (nseg = 0; i < len; nseg++) {
        seg = ++i;
        while (i < len && s[i] != '/') {
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
                  || (s[i] >= '0' && s[i] <= '9') || s[i] == '.'
                  || s[i] == '-' || s[i] == '_'))
            {
                return 0;
            }
            i++;
        }
        if (i == seg || (i - seg == 1 && s[seg] == '.')
            || (i - seg == 2 && s[seg] == '.' && s[seg + 1] == '.'))
        {
            return 0;
        }
    }

    return nseg > 0;
}
