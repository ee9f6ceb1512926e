/*
 * ag_jwt: base64url, JWKS, verification against every attack class of SPEC
 * section 3, and signing. Every key is generated here at run time.
 */

#include "unit.h"

#include <dirent.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "ag_json.h"
#include "ag_jwt.h"


#define NOW       1750000000LL
#define AUD       "https://gw.example"
#define ISS       "https://idp.example"
#define ISS2      "https://other.example"

#define H_EC      "{\"alg\":\"ES256\",\"kid\":\"ec1\"}"
#define H_ED      "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}"
#define H_RSA     "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}"

/* claims around NOW = 1750000000 */
#define EXP_OK    ",\"exp\":1750000300"
#define P_BASE    "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"agent-1\""
#define P_OK      P_BASE EXP_OK "}"

/* the P-256 group order n, big-endian */
static const unsigned char p256_n[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
    0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51
};

/* RFC 7638 section 3.1 */
#define RFC7638_N \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPF" \
    "FxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93l" \
    "qt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHz" \
    "u6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPks" \
    "INHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define RFC7638_TP "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* RFC 8037 appendix A.2 and A.3 */
#define RFC8037_X  "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define RFC8037_TP "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


typedef struct {
    EVP_PKEY    *ec;        /* ISS, kid ec1 */
    EVP_PKEY    *ec2;       /* ISS, kid ec2 */
    EVP_PKEY    *ed;        /* ISS, kid ed1 */
    EVP_PKEY    *rsa;       /* ISS, kid rsa1 */
    EVP_PKEY    *other;     /* ISS2, kid ec1 as well */
    EVP_PKEY    *evil_ec;   /* nobody trusts these */
    EVP_PKEY    *evil_ed;
    ag_trust_t  *trust;
    char         dir[64];
} fx_t;


/* --- helpers ----------------------------------------------------------------- */

static char *
b64(const void *p, size_t n)
{
    char  *out = malloc(n * 4 / 3 + 4);

    assert_non_null(out);
    assert_true(ag_b64url_encode(p, n, out, n * 4 / 3 + 4) >= 0);
    return out;
}


static char *
join(const char *a, const char *b, const char *c)
{
    size_t  n = strlen(a) + strlen(b) + strlen(c) + 3;
    char   *out = malloc(n);

    assert_non_null(out);
    snprintf(out, n, "%s.%s.%s", a, b, c);
    return out;
}


/* Sign with OpenSSL directly (not with ag_jwt_sign), ECDSA as raw r||s
   unless der is set. */
static size_t
raw_sign(EVP_PKEY *key, const char *input, unsigned char *sig, int der)
{
    unsigned char         buf[1024];
    size_t                n = sizeof(buf);
    EVP_MD_CTX           *md = EVP_MD_CTX_new();
    ECDSA_SIG            *es;
    const BIGNUM         *r, *s;
    const unsigned char  *p = buf;

    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL,
                         EVP_PKEY_is_a(key, "ED25519") ? NULL : "SHA256",
                         NULL, NULL, key, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, buf, &n, (const unsigned char *) input,
                                    strlen(input)), 1);
    EVP_MD_CTX_free(md);

    if (!EVP_PKEY_is_a(key, "EC") || der) {
        memcpy(sig, buf, n);
        return n;
    }

    es = d2i_ECDSA_SIG(NULL, &p, (long) n);
    assert_non_null(es);
    ECDSA_SIG_get0(es, &r, &s);
    assert_int_equal(BN_bn2binpad(r, sig, 32), 32);
    assert_int_equal(BN_bn2binpad(s, sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}


static char *
mint_ex(EVP_PKEY *key, const char *hdr, const char *payload, int der)
{
    unsigned char  sig[1024];
    size_t         n;
    char          *h, *p, *in, *s, *tok;

    h = b64(hdr, strlen(hdr));
    p = b64(payload, strlen(payload));
    in = malloc(strlen(h) + strlen(p) + 2);
    assert_non_null(in);
    sprintf(in, "%s.%s", h, p);

    n = raw_sign(key, in, sig, der);
    s = b64(sig, n);
    tok = join(h, p, s);

    free(h);
    free(p);
    free(in);
    free(s);
    return tok;
}


static char *
mint(EVP_PKEY *key, const char *hdr, const char *payload)
{
    return mint_ex(key, hdr, payload, 0);
}


/* A token with the given signature bytes. */
static char *
mint_sig(const char *hdr, const char *payload, const unsigned char *sig,
    size_t n)
{
    char  *h, *p, *s, *tok;

    h = b64(hdr, strlen(hdr));
    p = b64(payload, strlen(payload));
    s = b64(sig, n);
    tok = join(h, p, s);
    free(h);
    free(p);
    free(s);
    return tok;
}


/* The error message must never carry any part of the token. */
static void
assert_err_clean(const char *err, const char *tok)
{
    const char  *p, *dot;
    char         piece[9];

    for (p = tok; *p != '\0'; p = (*dot == '.') ? dot + 1 : dot) {
        dot = strchr(p, '.');
        if (dot == NULL) {
            dot = p + strlen(p);
        }
        if (dot - p >= 8) {
            memcpy(piece, p, 8);
            piece[8] = '\0';
            if (strstr(err, piece) != NULL) {
                fail_msg("error \"%s\" quotes the token", err);
            }
        }
    }

    if (strstr(err, "://") != NULL) {
        fail_msg("error \"%s\" quotes a claim", err);
    }
}


static void
expect_tok_at(const fx_t *fx, const char *tok, size_t len, int64_t now,
    ag_jwt_status_t want)
{
    char             err[256];
    json_t          *claims = (json_t *) 1;
    ag_jwt_status_t  st;

    err[0] = '\0';
    st = ag_jwt_verify(fx->trust, tok, len, AUD, now, &claims, err,
                       sizeof(err));
    if (st != want) {
        fail_msg("got %s (%s), want %s", ag_jwt_status_name(st), err,
                 ag_jwt_status_name(want));
    }

    if (st == AG_JWT_OK) {
        assert_non_null(claims);
        assert_true(json_is_object(claims));
        json_decref(claims);
        return;
    }

    assert_null(claims);
    assert_true(err[0] != '\0');
    assert_int_equal(ERR_peek_error(), 0);
    if (len < 4096) {
        assert_err_clean(err, tok);
    }
}


static void
expect_tok(const fx_t *fx, const char *tok, ag_jwt_status_t want)
{
    expect_tok_at(fx, tok, strlen(tok), NOW, want);
}


static void
expect(const fx_t *fx, EVP_PKEY *key, const char *hdr, const char *payload,
    ag_jwt_status_t want)
{
    char  *tok = mint(key, hdr, payload);

    expect_tok(fx, tok, want);
    free(tok);
}


static json_t *
jwk_of(EVP_PKEY *key, const char *kid)
{
    json_t  *jwk = ag_jwk_public(key, kid);

    assert_non_null(jwk);
    return jwk;
}


/* {"keys": [...]} text of the given JWK objects (references stolen) */
static char *
jwks_text(json_t *k1, json_t *k2, json_t *k3, json_t *k4)
{
    json_t  *keys = json_array(), *doc;
    char    *text;

    json_array_append_new(keys, k1);
    if (k2 != NULL) {
        json_array_append_new(keys, k2);
    }
    if (k3 != NULL) {
        json_array_append_new(keys, k3);
    }
    if (k4 != NULL) {
        json_array_append_new(keys, k4);
    }

    doc = json_pack("{s:o}", "keys", keys);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(text);
    return text;
}


static ag_jwks_t *
jwks_ok(const char *text)
{
    char        err[256];
    ag_jwks_t  *jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));

    if (jwks == NULL) {
        fail_msg("JWKS refused: %s", err);
    }
    return jwks;
}


static void
jwks_refused(const char *text, const char *want)
{
    char        err[256];
    ag_jwks_t  *jwks;

    err[0] = '\0';
    jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    if (jwks != NULL) {
        ag_jwks_free(jwks);
        fail_msg("JWKS accepted: %s", text);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
    assert_int_equal(ERR_peek_error(), 0);
}


/* a JWK object text with one member replaced (or added) */
static char *
jwk_with(EVP_PKEY *key, const char *member, json_t *value)
{
    json_t  *jwk = jwk_of(key, "k");

    if (value == NULL) {
        json_object_del(jwk, member);
    } else {
        json_object_set_new(jwk, member, value);
    }
    return jwks_text(jwk, NULL, NULL, NULL);
}


static char *
write_file(fx_t *fx, const char *name, const void *data, size_t len)
{
    char  *path = malloc(256);
    FILE  *f;

    assert_non_null(path);
    snprintf(path, 256, "%s/%s", fx->dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}


static char *
write_pem(fx_t *fx, const char *name, EVP_PKEY *key, const char *pass)
{
    BIO    *bio = BIO_new(BIO_s_mem());
    char   *data, *path;
    long    n;

    assert_non_null(bio);
    if (pass != NULL) {
        assert_int_equal(PEM_write_bio_PrivateKey(bio, key,
                             EVP_aes_256_cbc(), (unsigned char *) pass,
                             (int) strlen(pass), NULL, NULL), 1);
    } else {
        assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0,
                                                  NULL, NULL), 1);
    }
    n = BIO_get_mem_data(bio, &data);
    path = write_file(fx, name, data, (size_t) n);
    BIO_free(bio);
    return path;
}


/* --- fixture ------------------------------------------------------------------ */

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

    EVP_PKEY_free(fx->ec);
    EVP_PKEY_free(fx->ec2);
    EVP_PKEY_free(fx->ed);
    EVP_PKEY_free(fx->rsa);
    EVP_PKEY_free(fx->other);
    EVP_PKEY_free(fx->evil_ec);
    EVP_PKEY_free(fx->evil_ed);
    ag_trust_free(fx->trust);

    remove_dir(fx->dir);

    free(fx);
    return 0;
}


static int
setup(void **state)
{
    char        err[256], *text;
    fx_t       *fx = calloc(1, sizeof(fx_t));
    ag_jwks_t  *jwks;

    if (fx == NULL) {
        return -1;
    }
    *state = fx;

    fx->ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx->ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fx->rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    fx->other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx->evil_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx->evil_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (fx->ec == NULL || fx->ec2 == NULL || fx->ed == NULL || fx->rsa == NULL
        || fx->other == NULL || fx->evil_ec == NULL || fx->evil_ed == NULL)
    {
        goto failed;
    }

    snprintf(fx->dir, sizeof(fx->dir), "%s/agjwt.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        goto failed;
    }

    fx->trust = ag_trust_new();

    text = jwks_text(ag_jwk_public(fx->ec, "ec1"), ag_jwk_public(fx->ec2, "ec2"),
                     ag_jwk_public(fx->ed, "ed1"), ag_jwk_public(fx->rsa, "rsa1"));
    jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    free(text);
    if (jwks == NULL || ag_trust_add(fx->trust, ISS, jwks, err, sizeof(err))) {
        fprintf(stderr, "setup: %s\n", err);
        goto failed;
    }

    text = jwks_text(ag_jwk_public(fx->other, "ec1"), NULL, NULL, NULL);
    jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    free(text);
    if (jwks == NULL || ag_trust_add(fx->trust, ISS2, jwks, err, sizeof(err))) {
        fprintf(stderr, "setup: %s\n", err);
        goto failed;
    }

    return 0;

failed:

    teardown(state);
    return -1;
}


/* --- base64url ------------------------------------------------------------------ */

static void
b64url_vectors(void **state)
{
    static const char *const  plain[] = {
        "", "f", "fo", "foo", "foob", "fooba", "foobar"
    };
    static const char *const  coded[] = {
        "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"
    };
    char                      out[16];
    unsigned char             bin[16];
    size_t                    i;
    long                      n;

    (void) state;

    for (i = 0; i < 7; i++) {
        n = ag_b64url_encode((const unsigned char *) plain[i], strlen(plain[i]),
                             out, sizeof(out));
        assert_int_equal(n, strlen(coded[i]));
        assert_string_equal(out, coded[i]);

        n = ag_b64url_decode(coded[i], strlen(coded[i]), bin, sizeof(bin));
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(bin, plain[i], (size_t) n);
    }

    /* the URL-safe alphabet: 0xfb 0xff -> "-_8" */
    bin[0] = 0xfb;
    bin[1] = 0xff;
    assert_int_equal(ag_b64url_encode(bin, 2, out, sizeof(out)), 3);
    assert_string_equal(out, "-_8");
    assert_int_equal(ag_b64url_decode("-_8", 3, bin, sizeof(bin)), 2);
    assert_int_equal(bin[0], 0xfb);
    assert_int_equal(bin[1], 0xff);
}


static void
b64url_strict(void **state)
{
    unsigned char  bin[16];
    char           out[4];

    (void) state;

    assert_int_equal(ag_b64url_decode("Zg==", 4, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm8=", 4, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Z", 1, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm9vY", 5, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm+v", 4, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm/v", 4, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm9v\n", 5, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode(" Zm9v", 5, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm\0v", 4, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm.v", 4, bin, sizeof(bin)), -1);

    /* non-canonical: the unused low bits of the last character are set */
    assert_int_equal(ag_b64url_decode("Zh", 2, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("Zm9", 3, bin, sizeof(bin)), -1);
    assert_int_equal(ag_b64url_decode("-_9", 3, bin, sizeof(bin)), -1);

    /* output space */
    assert_int_equal(ag_b64url_decode("Zm9vYg", 6, bin, 3), -1);
    assert_int_equal(ag_b64url_decode("Zm9vYg", 6, bin, 4), 4);
    assert_int_equal(ag_b64url_encode((const unsigned char *) "foo", 3, out,
                                      3), -1);
    assert_int_equal(ag_b64url_encode((const unsigned char *) "foo", 3, out,
                                      4), 4);       /* exact: no NUL */
    assert_memory_equal(out, "Zm9v", 4);
}


/* --- valid tokens ----------------------------------------------------------------- */

static void
valid_es256(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, H_EC, P_OK, AG_JWT_OK);
    expect(fx, fx->ec2, "{\"alg\":\"ES256\",\"kid\":\"ec2\"}", P_OK, AG_JWT_OK);
}


static void
valid_eddsa(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ed, H_ED, P_OK, AG_JWT_OK);
}


static void
valid_rs256(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->rsa, H_RSA, P_OK, AG_JWT_OK);
}


static void
valid_claims_returned(void **state)
{
    char             err[256], *tok;
    json_t          *claims;
    fx_t            *fx = *state;
    ag_jwt_status_t  st;

    tok = mint(fx->ed, H_ED, P_BASE ",\"groups\":[\"ops\"]" EXP_OK "}");

    /* the length is explicit: bytes after it are not read */
    {
        char  *longer = malloc(strlen(tok) + 8);

        assert_non_null(longer);
        sprintf(longer, "%sGARBAGE", tok);
        free(tok);
        tok = longer;
    }

    st = ag_jwt_verify(fx->trust, tok, strlen(tok) - 7, AUD, NOW, &claims, err,
                       sizeof(err));
    assert_int_equal(st, AG_JWT_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")),
                        "agent-1");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(claims, "groups"), 0)), "ops");
    json_decref(claims);

    /* claims may be NULL when only the verdict matters */
    st = ag_jwt_verify(fx->trust, tok, strlen(tok) - 7, AUD, NOW, NULL, err,
                       sizeof(err));
    assert_int_equal(st, AG_JWT_OK);
    free(tok);
}


static void
valid_typ_and_extra_headers(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"JWT\"}",
           P_OK, AG_JWT_OK);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"at+jwt\","
           "\"cty\":\"x\"}", P_OK, AG_JWT_OK);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"b64\":true}",
           P_OK, AG_JWT_OK);
}


static void
kidless_single_fitting_key(void **state)
{
    fx_t  *fx = *state;

    /* ISS has one Ed25519 key (and others of other types) */
    expect(fx, fx->ed, "{\"alg\":\"EdDSA\"}", P_OK, AG_JWT_OK);
    expect(fx, fx->rsa, "{\"alg\":\"RS256\"}", P_OK, AG_JWT_OK);
}


/* --- alg attacks ------------------------------------------------------------------- */

static void
alg_none(void **state)
{
    char  *h, *p, *tok;
    fx_t  *fx = *state;

    h = b64("{\"alg\":\"none\"}", 14);
    p = b64(P_OK, strlen(P_OK));

    tok = join(h, p, "");
    expect_tok(fx, tok, AG_JWT_BAD_ALG);
    free(tok);

    tok = join(h, p, "c2lnbmF0dXJl");
    expect_tok(fx, tok, AG_JWT_BAD_ALG);
    free(tok);

    free(h);
    free(p);

    /* none with a kid that names a real key */
    expect(fx, fx->ec, "{\"alg\":\"none\",\"kid\":\"ec1\"}", P_OK,
           AG_JWT_BAD_ALG);
}


static void
alg_variants_refused(void **state)
{
    static const char *const  hdrs[] = {
        "{\"alg\":\"None\",\"kid\":\"ec1\"}",
        "{\"alg\":\"NONE\",\"kid\":\"ec1\"}",
        "{\"alg\":\"es256\",\"kid\":\"ec1\"}",
        "{\"alg\":\"ES384\",\"kid\":\"ec1\"}",
        "{\"alg\":\"ES256K\",\"kid\":\"ec1\"}",
        "{\"alg\":\"ES256 \",\"kid\":\"ec1\"}",
        "{\"alg\":\"PS256\",\"kid\":\"ec1\"}",
        "{\"alg\":\"RS512\",\"kid\":\"ec1\"}",
        "{\"alg\":\"Ed25519\",\"kid\":\"ec1\"}",
        "{\"alg\":\"\",\"kid\":\"ec1\"}",
        "{\"alg\":null,\"kid\":\"ec1\"}",
        "{\"alg\":[\"ES256\"],\"kid\":\"ec1\"}",
        "{\"kid\":\"ec1\"}",
    };
    size_t                    i;
    fx_t                     *fx = *state;

    for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        expect(fx, fx->ec, hdrs[i], P_OK, AG_JWT_BAD_ALG);
    }
}


/* HS256 with the issuer's public key (PEM, DER or JWK x) as the HMAC secret */
static void
alg_hs256_public_key_secret(void **state)
{
    unsigned char   mac[32], der[512], *dp;
    size_t          maclen;
    char           *h, *p, *in, *s, *tok, *pem;
    long            pemlen;
    int             derlen, i;
    BIO            *bio;
    fx_t           *fx = *state;
    const char     *hdrs[3] = {
        "{\"alg\":\"HS256\",\"kid\":\"ec1\"}",
        "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}",
        "{\"alg\":\"hs256\"}",
    };

    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, fx->rsa), 1);
    pemlen = BIO_get_mem_data(bio, &pem);
    dp = der;
    derlen = i2d_PUBKEY(fx->rsa, &dp);
    assert_true(derlen > 0);

    for (i = 0; i < 3; i++) {
        h = b64(hdrs[i], strlen(hdrs[i]));
        p = b64(P_OK, strlen(P_OK));
        in = malloc(strlen(h) + strlen(p) + 2);
        sprintf(in, "%s.%s", h, p);

        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem,
                                  (size_t) pemlen, (unsigned char *) in,
                                  strlen(in), mac, sizeof(mac), &maclen));
        s = b64(mac, maclen);
        tok = join(h, p, s);
        expect_tok(fx, tok, AG_JWT_BAD_ALG);
        free(tok);
        free(s);

        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, der,
                                  (size_t) derlen, (unsigned char *) in,
                                  strlen(in), mac, sizeof(mac), &maclen));
        s = b64(mac, maclen);
        tok = join(h, p, s);
        expect_tok(fx, tok, AG_JWT_BAD_ALG);
        free(tok);
        free(s);

        free(in);
        free(h);
        free(p);
    }

    BIO_free(bio);
}


static void
alg_key_mismatch(void **state)
{
    fx_t  *fx = *state;

    /* the header says ES256, the kid names the RSA key */
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", P_OK,
           AG_JWT_BAD_ALG);
    expect(fx, fx->rsa, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", P_OK,
           AG_JWT_BAD_ALG);
    expect(fx, fx->rsa, "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", P_OK,
           AG_JWT_BAD_ALG);
    expect(fx, fx->ed, "{\"alg\":\"EdDSA\",\"kid\":\"ec1\"}", P_OK,
           AG_JWT_BAD_ALG);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ed1\"}", P_OK,
           AG_JWT_BAD_ALG);
}


static void
kid_wrong(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"nope\"}", P_OK,
           AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"EC1\"}", P_OK,
           AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"\"}", P_OK,
           AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":1}", P_OK,
           AG_JWT_MALFORMED);
    /* right kid, other key of the same issuer */
    expect(fx, fx->ec2, H_EC, P_OK, AG_JWT_BAD_SIGNATURE);
}


static void
kid_missing_several_keys(void **state)
{
    fx_t  *fx = *state;

    /* ISS has two ES256 keys: without kid, neither is tried */
    expect(fx, fx->ec, "{\"alg\":\"ES256\"}", P_OK, AG_JWT_UNTRUSTED);
    expect(fx, fx->ec2, "{\"alg\":\"ES256\"}", P_OK, AG_JWT_UNTRUSTED);
}


/* --- claims ------------------------------------------------------------------------ */

static void
exp_expired_and_missing(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1749990000}", AG_JWT_EXPIRED);
    expect(fx, fx->ec, H_EC, P_BASE "}", AG_JWT_EXPIRED);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":\"1750000300\"}", AG_JWT_EXPIRED);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":null}", AG_JWT_EXPIRED);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":true}", AG_JWT_EXPIRED);
}


static void
exp_real(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1750000300.5}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1.75e9}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1749999939.5}", AG_JWT_EXPIRED);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":-1e300}", AG_JWT_EXPIRED);
}


static void
nbf_iat_future(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"nbf\":1750000100}",
           AG_JWT_NOT_YET_VALID);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"iat\":1750000100}",
           AG_JWT_NOT_YET_VALID);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"nbf\":1749999000,"
           "\"iat\":1749999000}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"nbf\":\"soon\"}",
           AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"iat\":[1]}", AG_JWT_MALFORMED);
}


static void
skew_boundaries(void **state)
{
    fx_t  *fx = *state;

    /* exp 59 s and exactly 60 s in the past: inside the skew */
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1749999941}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1749999940}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1749999939}", AG_JWT_EXPIRED);
    expect(fx, fx->ec, H_EC, P_BASE ",\"exp\":1749999939.9}",
           AG_JWT_EXPIRED);

    /* nbf and iat 59 s ahead pass, 61 s ahead do not */
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"nbf\":1750000059}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"nbf\":1750000060}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"nbf\":1750000061}",
           AG_JWT_NOT_YET_VALID);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"iat\":1750000059}", AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"iat\":1750000061}",
           AG_JWT_NOT_YET_VALID);
}


static void
time_extremes(void **state)
{
    char  *tok;
    fx_t  *fx = *state;

    tok = mint(fx->ec, H_EC, P_BASE ",\"exp\":9223372036854775807,"
               "\"nbf\":-9223372036854775807}");
    expect_tok_at(fx, tok, strlen(tok), INT64_MAX, AG_JWT_OK);
    expect_tok_at(fx, tok, strlen(tok), INT64_MIN, AG_JWT_OK);
    free(tok);

    tok = mint(fx->ec, H_EC, P_BASE ",\"exp\":-9223372036854775807}");
    expect_tok_at(fx, tok, strlen(tok), INT64_MAX, AG_JWT_EXPIRED);
    free(tok);
}


static void
iss_wrong_or_untrusted(void **state)
{
    fx_t  *fx = *state;

    /* not trusted at all, absent, not a string, a near miss */
    expect(fx, fx->ec, H_EC, "{\"iss\":\"https://evil.example\",\"aud\":\"" AUD
           "\"" EXP_OK "}", AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, H_EC, "{\"aud\":\"" AUD "\"" EXP_OK "}",
           AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, H_EC, "{\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\""
           EXP_OK "}", AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, H_EC, "{\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\""
           EXP_OK "}", AG_JWT_UNTRUSTED);
    expect(fx, fx->ec, H_EC, "{\"iss\":\"HTTPS://IDP.EXAMPLE\",\"aud\":\""
           AUD "\"" EXP_OK "}", AG_JWT_UNTRUSTED);
}


static void
iss_selects_keys(void **state)
{
    fx_t  *fx = *state;

    /* both issuers have a kid "ec1": each token is checked against the key
       of the issuer it names, never another's */
    expect(fx, fx->ec, H_EC, "{\"iss\":\"" ISS2 "\",\"aud\":\"" AUD "\""
           EXP_OK "}", AG_JWT_BAD_SIGNATURE);
    expect(fx, fx->other, H_EC, P_OK, AG_JWT_BAD_SIGNATURE);
    expect(fx, fx->other, H_EC, "{\"iss\":\"" ISS2 "\",\"aud\":\"" AUD "\""
           EXP_OK "}", AG_JWT_OK);
    /* ISS2 has no key "ed1" */
    expect(fx, fx->ed, H_ED, "{\"iss\":\"" ISS2 "\",\"aud\":\"" AUD "\""
           EXP_OK "}", AG_JWT_UNTRUSTED);
}


static void
aud_checks(void **state)
{
    fx_t  *fx = *state;

#define P_AUD(a) "{\"iss\":\"" ISS "\",\"aud\":" a EXP_OK "}"
    expect(fx, fx->ec, H_EC, P_AUD("\"https://tool.example\""),
           AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, P_AUD("[\"https://a.example\",\"b\"]"),
           AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, P_AUD("[\"https://a.example\",\"" AUD "\"]"),
           AG_JWT_OK);
    expect(fx, fx->ec, H_EC, P_AUD("[]"), AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, P_AUD("[[\"" AUD "\"]]"), AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, P_AUD("{\"a\":\"" AUD "\"}"), AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, P_AUD("\"" AUD "/\""), AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, P_AUD("null"), AG_JWT_BAD_AUDIENCE);
    expect(fx, fx->ec, H_EC, "{\"iss\":\"" ISS "\"" EXP_OK "}",
           AG_JWT_BAD_AUDIENCE);
#undef P_AUD
}


static void
aud_null_audience_fails_closed(void **state)
{
    char             err[256], *tok;
    json_t          *claims;
    fx_t            *fx = *state;

    tok = mint(fx->ec, H_EC, P_OK);
    assert_int_equal(ag_jwt_verify(fx->trust, tok, strlen(tok), NULL, NOW,
                                   &claims, err, sizeof(err)),
                     AG_JWT_BAD_AUDIENCE);
    assert_null(claims);
    free(tok);
}


/* The signature is checked before any claim: no probing without a key. */
static void
signature_before_claims(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->evil_ec, H_EC, P_BASE ",\"exp\":1}", AG_JWT_BAD_SIGNATURE);
    expect(fx, fx->evil_ec, H_EC, "{\"iss\":\"" ISS "\",\"aud\":\"x\"" EXP_OK
           "}", AG_JWT_BAD_SIGNATURE);
    expect(fx, fx->evil_ec, H_EC, P_BASE EXP_OK ",\"nbf\":1999999999}",
           AG_JWT_BAD_SIGNATURE);
    expect(fx, fx->evil_ec, H_EC, P_BASE EXP_OK ",\"nbf\":\"x\"}",
           AG_JWT_BAD_SIGNATURE);
}


/* --- size and shape --------------------------------------------------------------- */

static void
oversized(void **state)
{
    char             err[256], *tok, *big, *pay;
    size_t           pad, len;
    int              found;
    fx_t            *fx = *state;

    big = malloc(AG_JWT_MAX_LEN + 2);
    assert_non_null(big);
    memset(big, 'A', AG_JWT_MAX_LEN + 1);
    big[AG_JWT_MAX_LEN + 1] = '\0';
    big[10] = '.';
    big[20] = '.';
    expect_tok_at(fx, big, AG_JWT_MAX_LEN + 1, NOW, AG_JWT_TOO_LARGE);
    assert_int_equal(ag_jwt_verify(fx->trust, big, (size_t) -1, AUD, NOW, NULL,
                                   err, sizeof(err)), AG_JWT_TOO_LARGE);
    free(big);

    /* a valid token of exactly AG_JWT_MAX_LEN bytes passes */
    found = 0;
    pay = malloc(AG_JWT_MAX_LEN);
    assert_non_null(pay);

    for (pad = 5900; pad < 6200 && !found; pad++) {
        len = (size_t) snprintf(pay, AG_JWT_MAX_LEN, P_BASE EXP_OK
                                ",\"pad\":\"%0*d\"}", (int) pad, 0);
        assert_true(len < AG_JWT_MAX_LEN);
        tok = mint(fx->ec, H_EC, pay);
        if (strlen(tok) == AG_JWT_MAX_LEN) {
            expect_tok(fx, tok, AG_JWT_OK);
            found = 1;
        } else if (strlen(tok) == AG_JWT_MAX_LEN + 1) {
            expect_tok(fx, tok, AG_JWT_TOO_LARGE);
        }
        free(tok);
    }

    assert_true(found);
    free(pay);
}


static void
segments_wrong(void **state)
{
    char  *good, *tok;
    fx_t  *fx = *state;

    good = mint(fx->ec, H_EC, P_OK);

    expect_tok(fx, "", AG_JWT_MALFORMED);
    expect_tok(fx, ".", AG_JWT_MALFORMED);
    expect_tok(fx, "..", AG_JWT_MALFORMED);
    expect_tok(fx, "...", AG_JWT_MALFORMED);
    expect_tok(fx, "abc", AG_JWT_MALFORMED);

    /* two segments: the signature dropped */
    tok = strdup(good);
    *strrchr(tok, '.') = '\0';
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    /* four segments */
    tok = malloc(strlen(good) + 6);
    sprintf(tok, "%s.abcd", good);
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    sprintf(tok, "%s.", good);
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    /* NULL token */
    {
        char  err[64];
        assert_int_equal(ag_jwt_verify(fx->trust, NULL, 0, AUD, NOW, NULL, err,
                                       sizeof(err)), AG_JWT_MALFORMED);
    }

    free(good);
}


/* Replace one character of segment `seg` (0, 1, 2) at `pos` (from its end
   when negative). */
static char *
tamper(const char *tok, int seg, int pos, char c)
{
    char  *t = strdup(tok), *p = t, *end;

    assert_non_null(t);
    while (seg-- > 0) {
        p = strchr(p, '.') + 1;
    }
    end = strchr(p, '.');
    if (end == NULL) {
        end = p + strlen(p);
    }
    if (pos < 0) {
        p = end + pos;
    } else {
        p += pos;
    }
    *p = c;
    return t;
}


static void
bad_base64url(void **state)
{
    char  *good, *tok, *h, *p, *s;
    fx_t  *fx = *state;

    good = mint(fx->ec, H_EC, P_OK);

    tok = tamper(good, 0, 3, '+');
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    tok = tamper(good, 1, 5, '/');
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    tok = tamper(good, 1, 5, ' ');
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    tok = tamper(good, 2, 4, '*');
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    /* padding on a segment */
    h = b64(H_EC " ", strlen(H_EC) + 1);        /* 29 bytes: 2 pad chars */
    p = b64(P_OK, strlen(P_OK));
    s = malloc(strlen(h) + 3);
    sprintf(s, "%s==", h);
    tok = join(s, p, "AAAA");
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);
    free(s);
    free(h);
    free(p);

    /* the signature segment padded: 64 bytes are 86 chars, plus "==" */
    tok = malloc(strlen(good) + 3);
    sprintf(tok, "%s==", good);
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);

    free(good);
}


static void
non_canonical_base64url(void **state)
{
    char  *good, *tok;
    int    v;
    fx_t  *fx = *state;

    /* the signature's 86th char carries 4 unused bits: set one; it decodes to
       the same bytes, which a lax decoder would accept */
    good = mint(fx->ec, H_EC, P_OK);
    {
        const char  *sig = strrchr(good, '.') + 1;
        const char  *alpha =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        assert_int_equal(strlen(sig), 86);
        v = (int) (strchr(alpha, sig[85]) - alpha);
        tok = tamper(good, 2, -1, alpha[v | 1]);
    }
    expect_tok(fx, tok, AG_JWT_MALFORMED);
    free(tok);
    free(good);
}


static void
header_not_object(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, "not json", P_OK, AG_JWT_MALFORMED);
    expect(fx, fx->ec, "[\"ES256\"]", P_OK, AG_JWT_MALFORMED);
    expect(fx, fx->ec, "\"ES256\"", P_OK, AG_JWT_MALFORMED);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\"", P_OK,
           AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC " x", P_OK, AG_JWT_MALFORMED);
}


static void
payload_not_object(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, H_EC, "[" P_OK "]", AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC, "not json", AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC, "1750000300", AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC, P_OK "{}", AG_JWT_MALFORMED);
}


static void
duplicate_keys(void **state)
{
    fx_t  *fx = *state;

    /* validly signed, but read two ways by two parsers */
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"alg\":\"none\"}",
           P_OK, AG_JWT_MALFORMED);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"kid\":\"ec2\"}",
           P_OK, AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"sub\":\"admin\"}",
           AG_JWT_MALFORMED);
    expect(fx, fx->ec, H_EC, P_BASE EXP_OK ",\"iss\":\"" ISS2 "\"}",
           AG_JWT_MALFORMED);
}


/* --- signature attacks ---------------------------------------------------------- */

/* The error of a refused token, after checking its status. */
static const char *
verify_err(const fx_t *fx, const char *tok, ag_jwt_status_t want, char *err,
    size_t errlen)
{
    ag_jwt_status_t  st;

    st = ag_jwt_verify(fx->trust, tok, strlen(tok), AUD, NOW, NULL, err,
                       errlen);
    assert_int_equal(st, want);
    return err;
}


/* ES256 r||s refused by the range check itself, before OpenSSL sees it */
static void
out_of_range(const fx_t *fx, const unsigned char *sig)
{
    char   err[256];
    char  *tok = mint_sig(H_EC, P_OK, sig, 64);

    assert_non_null(strstr(verify_err(fx, tok, AG_JWT_BAD_SIGNATURE, err,
                                      sizeof(err)), "out of range"));
    free(tok);
}


static void
ecdsa_zero_and_order(void **state)
{
    unsigned char   sig[64], good[64];
    char            err[256], *tok, *h, *p, *in;
    fx_t           *fx = *state;

    /* r = s = 0 (CVE-2022-21449) */
    memset(sig, 0, sizeof(sig));
    out_of_range(fx, sig);

    /* a real signature's r or s replaced by n, or by 0 */
    h = b64(H_EC, strlen(H_EC));
    p = b64(P_OK, strlen(P_OK));
    in = malloc(strlen(h) + strlen(p) + 2);
    sprintf(in, "%s.%s", h, p);
    assert_int_equal(raw_sign(fx->ec, in, good, 0), 64);
    free(in);
    free(h);
    free(p);

    tok = mint_sig(H_EC, P_OK, good, 64);
    expect_tok(fx, tok, AG_JWT_OK);
    free(tok);

    memcpy(sig, p256_n, 32);
    memcpy(sig + 32, good + 32, 32);
    out_of_range(fx, sig);

    memcpy(sig, good, 32);
    memcpy(sig + 32, p256_n, 32);
    out_of_range(fx, sig);

    memcpy(sig, p256_n, 32);
    memcpy(sig + 32, p256_n, 32);
    out_of_range(fx, sig);

    memset(sig, 0, 32);
    memcpy(sig + 32, good + 32, 32);
    out_of_range(fx, sig);

    memset(sig, 0xff, 64);
    out_of_range(fx, sig);

    /* n - 1 is in range: refused only because it does not verify */
    memcpy(sig, p256_n, 32);
    sig[31]--;
    memcpy(sig + 32, good + 32, 32);
    tok = mint_sig(H_EC, P_OK, sig, 64);
    assert_null(strstr(verify_err(fx, tok, AG_JWT_BAD_SIGNATURE, err,
                                  sizeof(err)), "range"));
    free(tok);
}


static void
ecdsa_der_refused(void **state)
{
    char  *tok;
    fx_t  *fx = *state;

    tok = mint_ex(fx->ec, H_EC, P_OK, 1);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
}


static void
signature_lengths(void **state)
{
    unsigned char   sig[600];
    char           *h, *p, *in, *tok;
    size_t          n;
    fx_t           *fx = *state;

    h = b64(H_EC, strlen(H_EC));
    p = b64(P_OK, strlen(P_OK));
    in = malloc(strlen(h) + strlen(p) + 2);
    sprintf(in, "%s.%s", h, p);
    assert_int_equal(raw_sign(fx->ec, in, sig, 0), 64);
    free(in);
    free(h);
    free(p);

    sig[64] = 0;
    tok = mint_sig(H_EC, P_OK, sig, 65);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
    tok = mint_sig(H_EC, P_OK, sig, 63);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
    tok = mint_sig(H_EC, P_OK, sig, 0);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);

    /* RS256: the signature is exactly the modulus length */
    h = b64(H_RSA, strlen(H_RSA));
    p = b64(P_OK, strlen(P_OK));
    in = malloc(strlen(h) + strlen(p) + 2);
    sprintf(in, "%s.%s", h, p);
    n = raw_sign(fx->rsa, in, sig + 1, 0);
    assert_int_equal(n, 256);
    free(in);
    free(h);
    free(p);

    tok = mint_sig(H_RSA, P_OK, sig + 1, n);
    expect_tok(fx, tok, AG_JWT_OK);
    free(tok);
    sig[0] = 0;
    tok = mint_sig(H_RSA, P_OK, sig, n + 1);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
    tok = mint_sig(H_RSA, P_OK, sig + 1, n - 1);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);

    /* EdDSA: 64 bytes */
    memset(sig, 0, 65);
    tok = mint_sig(H_ED, P_OK, sig, 65);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
    tok = mint_sig(H_ED, P_OK, sig, 64);
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
}


static void
modified_token(void **state)
{
    char  *good, *other, *tok, *a, *b;
    fx_t  *fx = *state;
    EVP_PKEY *keys[3];
    const char *hdrs[3] = { H_EC, H_ED, H_RSA };
    int i;

    keys[0] = fx->ec;
    keys[1] = fx->ed;
    keys[2] = fx->rsa;

    for (i = 0; i < 3; i++) {
        good = mint(keys[i], hdrs[i], P_OK);
        other = mint(keys[i], hdrs[i], P_BASE EXP_OK ",\"admin\":true}");

        /* other's payload under good's header and signature */
        a = strchr(good, '.');
        b = strchr(other, '.');
        tok = malloc(strlen(good) + strlen(other));
        sprintf(tok, "%.*s%.*s%s", (int) (a - good), good,
                (int) (strrchr(other, '.') - b), b, strrchr(good, '.'));
        expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
        free(tok);

        /* one bit of the signature flipped (mid-segment, so canonical) */
        tok = tamper(good, 2, 10, good[strrchr(good, '.') - good + 11] == 'A'
                     ? 'B' : 'A');
        expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
        free(tok);

        free(good);
        free(other);
    }

    /* a header the signer did not sign */
    good = mint(fx->ec, H_EC, P_OK);
    a = b64("{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"JWT\"}", 39);
    tok = malloc(strlen(good) + strlen(a) + 1);
    sprintf(tok, "%s%s", a, strchr(good, '.'));
    expect_tok(fx, tok, AG_JWT_BAD_SIGNATURE);
    free(tok);
    free(a);
    free(good);
}


/* jwk, jku, x5u, x5c: an attacker's key embedded or pointed to is never used */
static void
embedded_key_headers(void **state)
{
    char     *hdr, *jwk_txt;
    json_t   *h, *jwk;
    fx_t     *fx = *state;
    int       i;
    struct {
        EVP_PKEY         *key;
        const char       *alg;
        const char       *kid;
        ag_jwt_status_t   want;
    } cases[] = {
        { NULL, "ES256", "evil", AG_JWT_UNTRUSTED },
        { NULL, "ES256", "ec1", AG_JWT_BAD_SIGNATURE },
        { NULL, "ES256", NULL, AG_JWT_UNTRUSTED },
        { NULL, "EdDSA", NULL, AG_JWT_BAD_SIGNATURE },
        { NULL, "EdDSA", "ed1", AG_JWT_BAD_SIGNATURE },
    };

    cases[0].key = cases[1].key = cases[2].key = fx->evil_ec;
    cases[3].key = cases[4].key = fx->evil_ed;

    for (i = 0; i < 5; i++) {
        jwk = jwk_of(cases[i].key, "evil");
        jwk_txt = json_dumps(jwk, JSON_COMPACT);

        h = json_pack("{s:s, s:o, s:s, s:s, s:[s]}",
                      "alg", cases[i].alg,
                      "jwk", jwk,
                      "jku", "https://evil.example/jwks.json",
                      "x5u", "https://evil.example/cert.pem",
                      "x5c", "MIIBevil");
        assert_non_null(h);
        if (cases[i].kid != NULL) {
            json_object_set_new(h, "kid", json_string(cases[i].kid));
        }
        hdr = json_dumps(h, JSON_COMPACT);

        expect(fx, cases[i].key, hdr, P_OK, cases[i].want);

        free(hdr);
        free(jwk_txt);
        json_decref(h);
    }

    /* the issuer's own key with a bogus jwk beside it is still fine: the
       header members are ignored, not refused */
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"jku\":"
           "\"https://evil.example/\"}", P_OK, AG_JWT_OK);
}


/* --- header rules ---------------------------------------------------------------- */

static void
crit_refused(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":[\"exp\"],"
           "\"exp\":1}", P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":"
           "[\"b64\"],\"b64\":false}", P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":[]}", P_OK,
           AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":\"x\"}",
           P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"crit\":null}",
           P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"b64\":false}",
           P_OK, AG_JWT_BAD_HEADER);
}


static void
typ_reserved(void **state)
{
    fx_t  *fx = *state;

    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":"
           "\"agentgov-task+jwt\"}", P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":"
           "\"AgentGov-Task+JWT\"}", P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":"
           "\"application/agentgov-cred+jwt\"}", P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":"
           "\"agentgov-\"}", P_OK, AG_JWT_BAD_HEADER);
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":5}", P_OK,
           AG_JWT_BAD_HEADER);
    /* merely containing the word is fine */
    expect(fx, fx->ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":"
           "\"x-agentgov-task\"}", P_OK, AG_JWT_OK);
}


/* --- JWKS ------------------------------------------------------------------------- */

static json_t *
rsa_jwk_raw(EVP_PKEY *key)
{
    BIGNUM         *n = NULL, *e = NULL;
    unsigned char   buf[1024];
    char           *ns, *es;
    json_t         *jwk;
    int             len;

    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    len = BN_bn2bin(n, buf);
    ns = b64(buf, (size_t) len);
    len = BN_bn2bin(e, buf);
    es = b64(buf, (size_t) len);
    jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", ns, "e", es);
    free(ns);
    free(es);
    BN_free(n);
    BN_free(e);
    return jwk;
}


static void
jwks_rsa_small(void **state)
{
    char      *text;
    EVP_PKEY  *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);

    (void) state;
    assert_non_null(k);
    assert_null(ag_key_alg(k));
    assert_null(ag_jwk_public(k, NULL));

    text = jwks_text(rsa_jwk_raw(k), NULL, NULL, NULL);
    jwks_refused(text, "1024 bits");
    free(text);
    EVP_PKEY_free(k);
}


static void
jwks_rsa_exponent(void **state)
{
    char  *text;
    fx_t  *fx = *state;

    text = jwk_with(fx->rsa, "e", json_string("AQ"));       /* e = 1 */
    jwks_refused(text, "exponent");
    free(text);
    text = jwk_with(fx->rsa, "e", json_string("AAE"));       /* e = 1, padded */
    jwks_refused(text, "exponent");
    free(text);
    text = jwk_with(fx->rsa, "e", json_string("AQAA"));     /* even */
    jwks_refused(text, "exponent");
    free(text);
    text = jwk_with(fx->rsa, "e", NULL);
    jwks_refused(text, "\"e\"");
    free(text);
}


static void
jwks_point_not_on_curve(void **state)
{
    unsigned char   y[32];
    char           *text, *ys;
    json_t         *jwk;
    fx_t           *fx = *state;

    jwk = jwk_of(fx->ec, "k");
    assert_int_equal(ag_b64url_decode(json_string_value(json_object_get(jwk,
                         "y")), 43, y, sizeof(y)), 32);
    y[31] ^= 1;
    ys = b64(y, 32);
    json_object_set_new(jwk, "y", json_string(ys));
    free(ys);
    text = jwks_text(jwk, NULL, NULL, NULL);
    jwks_refused(text, "not on the P-256 curve");
    free(text);

    /* the point (0, 0) and a short coordinate */
    text = jwk_with(fx->ec, "x", json_string(
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    jwks_refused(text, "curve");
    free(text);
    text = jwk_with(fx->ec, "x", json_string("AAAA"));
    jwks_refused(text, "32 bytes");
    free(text);
}


static void
jwks_kty_crv_unknown(void **state)
{
    char  *text;
    fx_t  *fx = *state;

    jwks_refused("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
                 "private key material");
    jwks_refused("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"x\"}]}", "kty");
    jwks_refused("{\"keys\":[{\"kty\":\"EC2\"}]}", "kty");
    jwks_refused("{\"keys\":[{\"kty\":\"ec\"}]}", "kty");
    jwks_refused("{\"keys\":[{\"n\":\"AQAB\"}]}", "kty");

    text = jwk_with(fx->ec, "crv", json_string("P-384"));
    jwks_refused(text, "P-256");
    free(text);
    text = jwk_with(fx->ed, "crv", json_string("Ed448"));
    jwks_refused(text, "Ed25519");
    free(text);
    text = jwk_with(fx->ed, "crv", json_string("X25519"));
    jwks_refused(text, "Ed25519");
    free(text);
}


static void
jwks_bad_base64(void **state)
{
    char           *text;
    const char     *x;
    char            padded[64];
    json_t         *jwk;
    fx_t           *fx = *state;

    jwk = jwk_of(fx->ed, "k");
    x = json_string_value(json_object_get(jwk, "x"));
    snprintf(padded, sizeof(padded), "%s=", x);
    json_decref(jwk);

    text = jwk_with(fx->ed, "x", json_string(padded));
    jwks_refused(text, "base64url");
    free(text);

    strcpy(padded, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR+");
    text = jwk_with(fx->ed, "x", json_string(padded));
    jwks_refused(text, "base64url");
    free(text);

    /* non-canonical last character (RFC 8037's x ends in "o": 'p' differs
       only in an unused bit) */
    text = jwk_with(fx->ed, "x", json_string(
                        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp"));
    jwks_refused(text, "base64url");
    free(text);

    text = jwk_with(fx->rsa, "n", json_string("!!!!"));
    jwks_refused(text, "base64url");
    free(text);

    text = jwk_with(fx->ed, "x", json_integer(5));
    jwks_refused(text, "base64url");
    free(text);
}


static void
jwks_alg_must_fit(void **state)
{
    char       *text;
    ag_jwks_t  *jwks;
    fx_t       *fx = *state;

    text = jwk_with(fx->ec, "alg", json_string("RS256"));
    jwks_refused(text, "\"alg\"");
    free(text);
    text = jwk_with(fx->rsa, "alg", json_string("PS256"));
    jwks_refused(text, "\"alg\"");
    free(text);
    text = jwk_with(fx->ed, "alg", json_string("ES256"));
    jwks_refused(text, "\"alg\"");
    free(text);
    text = jwk_with(fx->rsa, "alg", json_string("HS256"));
    jwks_refused(text, "\"alg\"");
    free(text);

    /* absent alg is fine */
    text = jwk_with(fx->ec, "alg", NULL);
    jwks = jwks_ok(text);
    assert_int_equal(ag_jwks_count(jwks), 1);
    ag_jwks_free(jwks);
    free(text);
}


static void
jwks_use_and_kid(void **state)
{
    char       *text;
    json_t     *enc;
    ag_jwks_t  *jwks;
    fx_t       *fx = *state;

    /* an encryption key is skipped, even one we could not parse */
    enc = jwk_of(fx->ec2, "enc1");
    json_object_set_new(enc, "use", json_string("enc"));
    text = jwks_text(enc, json_pack("{s:s, s:s}", "kty", "oct", "use", "enc"),
                     jwk_of(fx->ec, "sig1"), NULL);
    jwks = jwks_ok(text);
    assert_int_equal(ag_jwks_count(jwks), 1);
    ag_jwks_free(jwks);
    free(text);

    /* only encryption keys: nothing to verify with */
    enc = jwk_of(fx->ec2, "enc1");
    json_object_set_new(enc, "use", json_string("enc"));
    text = jwks_text(enc, NULL, NULL, NULL);
    jwks_refused(text, "no signature key");
    free(text);

    text = jwk_with(fx->ec, "use", json_integer(1));
    jwks_refused(text, "\"use\"");
    free(text);

    /* a duplicate kid would make key selection ambiguous */
    text = jwks_text(jwk_of(fx->ec, "same"), jwk_of(fx->ed, "same"), NULL,
                     NULL);
    jwks_refused(text, "duplicate \"kid\"");
    free(text);

    text = jwk_with(fx->ec, "kid", json_integer(7));
    jwks_refused(text, "\"kid\"");
    free(text);

    /* keys without kid are allowed, several of them */
    text = jwks_text(jwk_of(fx->ec, NULL), jwk_of(fx->ed, NULL),
                     jwk_of(fx->rsa, NULL), NULL);
    jwks = jwks_ok(text);
    assert_int_equal(ag_jwks_count(jwks), 3);
    ag_jwks_free(jwks);
    free(text);
}


static void
jwks_private_refused(void **state)
{
    char  *text;
    fx_t  *fx = *state;

    text = jwk_with(fx->ec, "d", json_string("AAAA"));
    jwks_refused(text, "private key material");
    free(text);
    text = jwk_with(fx->rsa, "p", json_string("AAAA"));
    jwks_refused(text, "private key material");
    free(text);
}


static void
jwks_document_shape(void **state)
{
    (void) state;

    jwks_refused("", "JWKS");
    jwks_refused("[]", "\"keys\"");
    jwks_refused("{}", "\"keys\"");
    jwks_refused("{\"keys\":{}}", "\"keys\"");
    jwks_refused("{\"keys\":[]}", "no signature key");
    jwks_refused("{\"keys\":[1]}", "not an object");
    jwks_refused("{\"keys\":[],\"keys\":[]}", "duplicate");
    jwks_refused("{\"keys\":[{\"kty\":\"OKP\",\"kty\":\"OKP\"}]}", "duplicate");
}


static void
jwks_load_and_trust(void **state)
{
    char        err[256], *text, *path;
    ag_jwks_t  *jwks;
    ag_trust_t *t;
    fx_t       *fx = *state;

    text = jwks_text(jwk_of(fx->ec, "a"), jwk_of(fx->ed, "b"), NULL, NULL);
    path = write_file(fx, "jwks.json", text, strlen(text));
    jwks = ag_jwks_load(path, err, sizeof(err));
    assert_non_null(jwks);
    assert_int_equal(ag_jwks_count(jwks), 2);

    t = ag_trust_new();
    assert_non_null(t);
    assert_int_equal(ag_trust_add(t, "https://a.example", jwks, err,
                                  sizeof(err)), 0);

    /* duplicate issuer: refused, and the JWKS is freed all the same */
    jwks = ag_jwks_load(path, err, sizeof(err));
    assert_non_null(jwks);
    assert_int_equal(ag_trust_add(t, "https://a.example", jwks, err,
                                  sizeof(err)), -1);
    assert_non_null(strstr(err, "duplicate"));

    assert_int_equal(ag_trust_add(t, "https://b.example", NULL, err,
                                  sizeof(err)), -1);
    jwks = ag_jwks_load(path, err, sizeof(err));
    assert_int_equal(ag_trust_add(t, "", jwks, err, sizeof(err)), -1);

    ag_trust_free(t);
    free(path);
    free(text);

    path = write_file(fx, "bad.json", "{\"keys\":[", 9);
    assert_null(ag_jwks_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "bad.json"));
    free(path);

    assert_null(ag_jwks_load("/nonexistent/jwks.json", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(ag_jwks_count(NULL), 0);
}


/* --- keys, thumbprints, signing ------------------------------------------------ */

static EVP_PKEY *
rsa_from_b64(const char *n_b64, const char *e_b64)
{
    unsigned char    n[512], e[8];
    long             nl, el;
    BIGNUM          *bn, *be;
    OSSL_PARAM_BLD  *bld;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    EVP_PKEY        *key = NULL;

    nl = ag_b64url_decode(n_b64, strlen(n_b64), n, sizeof(n));
    el = ag_b64url_decode(e_b64, strlen(e_b64), e, sizeof(e));
    assert_true(nl > 0 && el > 0);
    bn = BN_bin2bn(n, (int) nl, NULL);
    be = BN_bin2bn(e, (int) el, NULL);
    bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be);
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params),
                     1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return key;
}


static void
thumbprint_rfc7638(void **state)
{
    char        tp[64], *text;
    EVP_PKEY   *key;
    ag_jwks_t  *jwks;
    json_t     *jwk;

    (void) state;

    key = rsa_from_b64(RFC7638_N, "AQAB");
    assert_int_equal(ag_key_thumbprint(key, tp, sizeof(tp)), 0);
    assert_string_equal(tp, RFC7638_TP);
    assert_int_equal(ag_key_thumbprint(key, tp, 43), -1);
    assert_int_equal(ag_key_thumbprint(key, tp, 44), 0);
    assert_string_equal(tp, RFC7638_TP);

    /* the public JWK round-trips through the JWKS parser */
    jwk = jwk_of(key, "2011-04-29");
    assert_string_equal(json_string_value(json_object_get(jwk, "n")),
                        RFC7638_N);
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")),
                        "RS256");
    assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
    text = jwks_text(jwk, NULL, NULL, NULL);
    jwks = jwks_ok(text);
    ag_jwks_free(jwks);
    free(text);

    EVP_PKEY_free(key);
}


static void
thumbprint_rfc8037(void **state)
{
    unsigned char  x[32];
    char           tp[64];
    EVP_PKEY      *key;

    (void) state;

    assert_int_equal(ag_b64url_decode(RFC8037_X, 43, x, sizeof(x)), 32);
    key = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, 32);
    assert_non_null(key);
    assert_int_equal(ag_key_thumbprint(key, tp, sizeof(tp)), 0);
    assert_string_equal(tp, RFC8037_TP);
    EVP_PKEY_free(key);
}


static void
thumbprint_and_jwk_of_generated_keys(void **state)
{
    char      a[64], b[64];
    json_t   *jwk;
    fx_t     *fx = *state;

    assert_int_equal(ag_key_thumbprint(fx->ec, a, sizeof(a)), 0);
    assert_int_equal(ag_key_thumbprint(fx->ec, b, sizeof(b)), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 43);
    assert_int_equal(ag_key_thumbprint(fx->ec2, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(ag_key_thumbprint(fx->ed, b, sizeof(b)), 0);
    assert_int_equal(ag_key_thumbprint(fx->rsa, b, sizeof(b)), 0);
    assert_int_equal(ag_key_thumbprint(NULL, b, sizeof(b)), -1);

    jwk = jwk_of(fx->ec, "k1");
    assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
    assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
                        "P-256");
    assert_int_equal(json_string_length(json_object_get(jwk, "x")), 43);
    assert_int_equal(json_string_length(json_object_get(jwk, "y")), 43);
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), "k1");
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")),
                        "ES256");
    assert_null(json_object_get(jwk, "d"));
    json_decref(jwk);

    jwk = jwk_of(fx->ed, NULL);
    assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "OKP");
    assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
                        "Ed25519");
    assert_null(json_object_get(jwk, "kid"));
    assert_null(json_object_get(jwk, "y"));
    assert_null(json_object_get(jwk, "d"));
    json_decref(jwk);

    jwk = jwk_of(fx->rsa, "r");
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
    assert_int_equal(json_string_length(json_object_get(jwk, "n")), 342);
    assert_null(json_object_get(jwk, "d"));
    json_decref(jwk);
}


static void
key_alg_values(void **state)
{
    EVP_PKEY  *k;
    fx_t      *fx = *state;

    assert_string_equal(ag_key_alg(fx->ec), "ES256");
    assert_string_equal(ag_key_alg(fx->ed), "EdDSA");
    assert_string_equal(ag_key_alg(fx->rsa), "RS256");
    assert_null(ag_key_alg(NULL));

    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_null(ag_key_alg(k));
    assert_null(ag_jwk_public(k, "x"));
    EVP_PKEY_free(k);

    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    assert_null(ag_key_alg(k));
    EVP_PKEY_free(k);

    k = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    assert_null(ag_key_alg(k));
    EVP_PKEY_free(k);
}


static void
key_load_private(void **state)
{
    char       err[256], *path;
    EVP_PKEY  *k, *small;
    fx_t      *fx = *state;
    EVP_PKEY  *keys[3];
    int        i;

    keys[0] = fx->ec;
    keys[1] = fx->ed;
    keys[2] = fx->rsa;

    for (i = 0; i < 3; i++) {
        path = write_pem(fx, "key.pem", keys[i], NULL);
        k = ag_key_load_private(path, err, sizeof(err));
        assert_non_null(k);
        assert_string_equal(ag_key_alg(k), ag_key_alg(keys[i]));
        assert_int_equal(EVP_PKEY_eq(k, keys[i]), 1);
        EVP_PKEY_free(k);
        free(path);
    }

    small = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    path = write_pem(fx, "p384.pem", small, NULL);
    assert_null(ag_key_load_private(path, err, sizeof(err)));
    assert_non_null(strstr(err, "P-256"));
    free(path);
    EVP_PKEY_free(small);

    small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);
    path = write_pem(fx, "rsa1024.pem", small, NULL);
    assert_null(ag_key_load_private(path, err, sizeof(err)));
    assert_non_null(strstr(err, "RSA"));
    free(path);
    EVP_PKEY_free(small);

    /* encrypted: refused without prompting on a terminal */
    path = write_pem(fx, "enc.pem", fx->ec, "secret");
    assert_null(ag_key_load_private(path, err, sizeof(err)));
    free(path);

    {
        const char  *junk = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                            "-----END PRIVATE KEY-----\n";

        path = write_file(fx, "junk.pem", junk, strlen(junk));
    }
    assert_null(ag_key_load_private(path, err, sizeof(err)));
    free(path);

    assert_null(ag_key_load_private("/nonexistent.pem", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));

    /* no error left behind in OpenSSL's queue for the caller to trip on */
    assert_int_equal(ERR_peek_error(), 0);
}


static void
sign_roundtrip(void **state)
{
    char             err[256], *tok, *h;
    unsigned char    hb[256];
    long             n;
    json_t          *claims, *got, *hdr;
    fx_t            *fx = *state;
    EVP_PKEY        *keys[3];
    const char      *kids[3] = { "ec1", "ed1", "rsa1" };
    int              i;

    keys[0] = fx->ec;
    keys[1] = fx->ed;
    keys[2] = fx->rsa;

    claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:[s,s]}",
                       "iss", ISS, "aud", AUD, "sub", "agent-\xc3\xa9",
                       "exp", (json_int_t) NOW + 300, "iat", (json_int_t) NOW,
                       "act", "a", "b");
    assert_non_null(claims);

    for (i = 0; i < 3; i++) {
        assert_int_equal(ag_jwt_sign(keys[i], kids[i], "JWT", claims, &tok, err,
                                     sizeof(err)), 0);
        assert_int_equal(ag_jwt_verify(fx->trust, tok, strlen(tok), AUD, NOW,
                                       &got, err, sizeof(err)), AG_JWT_OK);
        assert_true(json_equal(got, claims));
        json_decref(got);

        /* the header is what the key implies */
        h = strchr(tok, '.');
        n = ag_b64url_decode(tok, (size_t) (h - tok), hb, sizeof(hb));
        assert_true(n > 0);
        hdr = ag_json_parse((char *) hb, (size_t) n, err, sizeof(err));
        assert_non_null(hdr);
        assert_string_equal(json_string_value(json_object_get(hdr, "alg")),
                            ag_key_alg(keys[i]));
        assert_string_equal(json_string_value(json_object_get(hdr, "kid")),
                            kids[i]);
        assert_string_equal(json_string_value(json_object_get(hdr, "typ")),
                            "JWT");
        json_decref(hdr);
        free(tok);

        /* ECDSA signatures are raw: 64 bytes, 86 characters */
        if (i == 0) {
            assert_int_equal(ag_jwt_sign(keys[i], kids[i], NULL, claims, &tok,
                                         err, sizeof(err)), 0);
            assert_int_equal(strlen(strrchr(tok, '.') + 1), 86);
            free(tok);
        }
    }

    /* without kid: fine for the issuer's single Ed25519 key */
    assert_int_equal(ag_jwt_sign(fx->ed, NULL, NULL, claims, &tok, err,
                                 sizeof(err)), 0);
    expect_tok(fx, tok, AG_JWT_OK);
    free(tok);

    /* the gateway's own typ is refused by the verifier of foreign tokens */
    assert_int_equal(ag_jwt_sign(fx->ec, "ec1", "agentgov-task+jwt", claims,
                                 &tok, err, sizeof(err)), 0);
    expect_tok(fx, tok, AG_JWT_BAD_HEADER);
    free(tok);

    json_decref(claims);
}


static void
sign_refusals(void **state)
{
    char      err[256], *tok;
    json_t   *arr;
    EVP_PKEY *k;
    fx_t     *fx = *state;

    arr = json_array();
    assert_int_equal(ag_jwt_sign(fx->ec, NULL, NULL, arr, &tok, err,
                                 sizeof(err)), -1);
    assert_null(tok);
    json_decref(arr);

    arr = json_object();
    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_int_equal(ag_jwt_sign(k, NULL, NULL, arr, &tok, err, sizeof(err)),
                     -1);
    assert_null(tok);
    EVP_PKEY_free(k);
    json_decref(arr);
}


static void
status_names(void **state)
{
    (void) state;

    assert_string_equal(ag_jwt_status_name(AG_JWT_OK), "ok");
    assert_string_equal(ag_jwt_status_name(AG_JWT_BAD_SIGNATURE),
                        "bad_signature");
    assert_string_equal(ag_jwt_status_name(AG_JWT_BAD_AUDIENCE),
                        "bad_audience");
    assert_string_equal(ag_jwt_status_name((ag_jwt_status_t) 99), "unknown");
}


static void
untrusted_when_no_trust(void **state)
{
    char  err[256], *tok;
    fx_t *fx = *state;
    ag_trust_t *empty = ag_trust_new();

    tok = mint(fx->ec, H_EC, P_OK);
    assert_int_equal(ag_jwt_verify(empty, tok, strlen(tok), AUD, NOW, NULL,
                                   err, sizeof(err)), AG_JWT_UNTRUSTED);
    assert_int_equal(ag_jwt_verify(NULL, tok, strlen(tok), AUD, NOW, NULL,
                                   err, sizeof(err)), AG_JWT_UNTRUSTED);
    /* err may be absent */
    assert_int_equal(ag_jwt_verify(fx->trust, tok, strlen(tok), AUD, NOW, NULL,
                                   NULL, 0), AG_JWT_OK);
    assert_int_equal(ag_jwt_verify(empty, tok, strlen(tok), AUD, NOW, NULL,
                                   NULL, 0), AG_JWT_UNTRUSTED);
    ag_trust_free(empty);
    free(tok);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64url_vectors),
        cmocka_unit_test(b64url_strict),
        cmocka_unit_test(valid_es256),
        cmocka_unit_test(valid_eddsa),
        cmocka_unit_test(valid_rs256),
        cmocka_unit_test(valid_claims_returned),
        cmocka_unit_test(valid_typ_and_extra_headers),
        cmocka_unit_test(kidless_single_fitting_key),
        cmocka_unit_test(alg_none),
        cmocka_unit_test(alg_variants_refused),
        cmocka_unit_test(alg_hs256_public_key_secret),
        cmocka_unit_test(alg_key_mismatch),
        cmocka_unit_test(kid_wrong),
        cmocka_unit_test(kid_missing_several_keys),
        cmocka_unit_test(exp_expired_and_missing),
        cmocka_unit_test(exp_real),
        cmocka_unit_test(nbf_iat_future),
        cmocka_unit_test(skew_boundaries),
        cmocka_unit_test(time_extremes),
        cmocka_unit_test(iss_wrong_or_untrusted),
        cmocka_unit_test(iss_selects_keys),
        cmocka_unit_test(aud_checks),
        cmocka_unit_test(aud_null_audience_fails_closed),
        cmocka_unit_test(signature_before_claims),
        cmocka_unit_test(oversized),
        cmocka_unit_test(segments_wrong),
        cmocka_unit_test(bad_base64url),
        cmocka_unit_test(non_canonical_base64url),
        cmocka_unit_test(header_not_object),
        cmocka_unit_test(payload_not_object),
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(ecdsa_zero_and_order),
        cmocka_unit_test(ecdsa_der_refused),
        cmocka_unit_test(signature_lengths),
        cmocka_unit_test(modified_token),
        cmocka_unit_test(embedded_key_headers),
        cmocka_unit_test(crit_refused),
        cmocka_unit_test(typ_reserved),
        cmocka_unit_test(jwks_rsa_small),
        cmocka_unit_test(jwks_rsa_exponent),
        cmocka_unit_test(jwks_point_not_on_curve),
        cmocka_unit_test(jwks_kty_crv_unknown),
        cmocka_unit_test(jwks_bad_base64),
        cmocka_unit_test(jwks_alg_must_fit),
        cmocka_unit_test(jwks_use_and_kid),
        cmocka_unit_test(jwks_private_refused),
        cmocka_unit_test(jwks_document_shape),
        cmocka_unit_test(jwks_load_and_trust),
        cmocka_unit_test(thumbprint_rfc7638),
        cmocka_unit_test(thumbprint_rfc8037),
        cmocka_unit_test(thumbprint_and_jwk_of_generated_keys),
        cmocka_unit_test(key_alg_values),
        cmocka_unit_test(key_load_private),
        cmocka_unit_test(sign_roundtrip),
        cmocka_unit_test(sign_refusals),
        cmocka_unit_test(status_names),
        cmocka_unit_test(untrusted_when_no_trust),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
