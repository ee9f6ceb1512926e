/*
 * Tasks (SPEC section 4): ids, the task token key, task tokens, the policy
 * checks of a declaration, a delegation and a renewal, and budgets.
 *
 * A task token is a JWS that only the gateway mints and reads, so its form is
 * fixed to the byte: one header, a fixed set of claims, HS256 under a key that
 * nothing else derives. The MAC is checked before the payload is parsed, so
 * nothing of a forged token ever reaches the JSON parser, and nothing read
 * from a token is copied into an error message.
 */

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "ag_json.h"
#include "ag_jwt.h"
#include "ag_task.h"
#include "ag_util.h"


#define AG_TASK_ID_BYTES     16
#define AG_TASK_KEY_LEN      32
#define AG_TASK_MAC_LEN      32
#define AG_TASK_IKM_LEN      32     /* Ed25519 seed, P-256 scalar */
#define AG_TASK_CNF_BYTES    32
#define AG_TASK_NAME_MAX     128    /* as the policy's names */
#define AG_TASK_DEPTH_MAX    64     /* as the policy's max_depth */
#define AG_TASK_LIST_MAX     (AG_TASK_TOOLS_MAX / 2)  /* names in "tools" */

/* the latest time RFC 3339 can write with four digits: 9999-12-31T23:59:59Z */
#define AG_TASK_TIME_MAX     INT64_C(253402300799)

#define AG_TASK_KDF_SALT     "agentgov"
#define AG_TASK_KDF_INFO     "agentgov task token v1"

/* the one header a task token has, byte for byte */
#define AG_TASK_HEADER       "{\"alg\":\"HS256\",\"typ\":\"" AG_TASK_TOKEN_TYP \
                             "\"}"

#define ag_task_b64len(n)    ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

#define AG_TASK_HEADER_B64   ag_task_b64len(sizeof(AG_TASK_HEADER) - 1)
#define AG_TASK_MAC_B64      ag_task_b64len(AG_TASK_MAC_LEN)


typedef struct {
    char    *p;
    size_t   len;
    size_t   pos;
} ag_task_buf_t;

/* a declaration's body, checked for form only */
typedef struct {
    ag_str_t   intent;
    int64_t    ttl;
    json_t    *tools;              /* NULL: the default */
    ag_str_t   purpose;
} ag_task_decl_t;


static int ag_task_fail(ag_task_error_t *e, int status, const char *code,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;


/* --- small helpers ------------------------------------------------------------- */

static int
ag_task_fail(ag_task_error_t *e, int status, const char *code,
    const char *fmt, ...)
{
    va_list  ap;

    e->status = status;
    e->code = code;

    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);

    return -1;
}


/* 1 to 128 letters, digits and . _ : @ -, not starting with . : @ -: the
   policy's names, which are also safe to echo in a message */
static int
ag_task_name_ok(const char *s, size_t len)
{
    size_t  i;
    char    c;

    if (s == NULL || len == 0 || len > AG_TASK_NAME_MAX
        || s[0] == '.' || s[0] == '-' || s[0] == ':' || s[0] == '@')
    {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9')
              || c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static int
ag_task_str_eq(ag_str_t a, const char *b)
{
    return b != NULL && strlen(b) == a.len
           && (a.len == 0 || memcmp(a.p, b, a.len) == 0);
}


static int
ag_task_list_has(const char *const *list, size_t n, ag_str_t name)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ag_task_str_eq(name, list[i])) {
            return 1;
        }
    }

    return 0;
}


/* a + b for b >= 0 without overflow; a negative b (a policy value that
   overflowed) adds nothing, so that limits built from it fail closed */
static int64_t
ag_task_add(int64_t a, int64_t b)
{
    if (b <= 0) {
        return a;
    }

    return a > INT64_MAX - b ? INT64_MAX : a + b;
}


/* seconds as the largest exact unit: "15m", "90s", "2d" */
static void
ag_task_duration_fmt(int64_t s, char *out, size_t outlen)
{
    if (s > 0 && s % 86400 == 0) {
        snprintf(out, outlen, "%" PRId64 "d", s / 86400);

    } else if (s > 0 && s % 3600 == 0) {
        snprintf(out, outlen, "%" PRId64 "h", s / 3600);

    } else if (s > 0 && s % 60 == 0) {
        snprintf(out, outlen, "%" PRId64 "m", s / 60);

    } else {
        snprintf(out, outlen, "%" PRId64 "s", s);
    }
}


static int
ag_task_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/* hex (either case) of exactly AG_TASK_CNF_BYTES bytes */
static int
ag_task_hex_decode(ag_str_t hex, unsigned char out[AG_TASK_CNF_BYTES])
{
    size_t  i;
    int     hi, lo;

    if (hex.len != AG_TASK_CNF_LEN) {
        return -1;
    }

    for (i = 0; i < AG_TASK_CNF_BYTES; i++) {
        hi = ag_task_hex_value(hex.p[2 * i]);
        lo = ag_task_hex_value(hex.p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


/* the next element of a list separated by sep, from *pos; 0 at the end */
static int
ag_task_next(ag_str_t list, char sep, size_t *pos, ag_str_t *elt)
{
    const char  *end;

    if (*pos > list.len || list.len == 0) {
        return 0;
    }

    elt->p = list.p + *pos;
    end = memchr(elt->p, sep, list.len - *pos);
    elt->len = end ? (size_t) (end - elt->p) : list.len - *pos;
    *pos += elt->len + 1;

    return 1;
}


/* --- the buffer a plan writes its strings into --------------------------------- */

static int
ag_task_buf_add(ag_task_buf_t *b, const char *s, size_t len)
{
    if (len >= b->len - b->pos) {
        return -1;
    }

    memcpy(b->p + b->pos, s, len);
    b->pos += len;

    return 0;
}


/* NUL-terminate what was added since start and describe it in out */
static int
ag_task_buf_end(ag_task_buf_t *b, size_t start, ag_str_t *out)
{
    if (b->pos >= b->len) {
        return -1;
    }

    b->p[b->pos] = '\0';
    out->p = b->p + start;
    out->len = b->pos - start;
    b->pos++;

    return 0;
}


static int
ag_task_buf_full(ag_task_error_t *e)
{
    return ag_task_fail(e, 503, "gateway_error",
                        "the task does not fit the gateway's buffer");
}


/* --- ids and keys --------------------------------------------------------------- */

int
ag_task_id_new(char id[AG_TASK_ID_LEN + 1])
{
    int            rc;
    unsigned char  raw[AG_TASK_ID_BYTES];

    id[0] = '\0';

    ERR_set_mark();
    rc = RAND_bytes(raw, sizeof(raw));
    ERR_pop_to_mark();

    if (rc != 1
        || ag_b64url_encode(raw, sizeof(raw), id, AG_TASK_ID_LEN + 1)
           != AG_TASK_ID_LEN)
    {
        id[0] = '\0';
        return -1;
    }

    id[AG_TASK_ID_LEN] = '\0';
    return 0;
}


int
ag_task_id_valid(const char *s, size_t len)
{
    unsigned char  raw[AG_TASK_ID_BYTES];

    /* the decoder also refuses non-zero bits past the 16th byte, so that an
       id has one spelling only */

    return s != NULL && len == AG_TASK_ID_LEN
           && ag_b64url_decode(s, len, raw, sizeof(raw)) == AG_TASK_ID_BYTES;
}


/* the private key's secret bytes: the Ed25519 seed or the P-256 scalar */
static int
ag_task_key_ikm(EVP_PKEY *key, unsigned char ikm[AG_TASK_IKM_LEN], char *err,
    size_t errlen)
{
    int      ok;
    char     group[32];
    size_t   len;
    BIGNUM  *d;

    if (key != NULL && EVP_PKEY_is_a(key, "ED25519")) {
        len = AG_TASK_IKM_LEN;
        if (EVP_PKEY_get_raw_private_key(key, ikm, &len) == 1
            && len == AG_TASK_IKM_LEN)
        {
            return 0;
        }
        ag_errf(err, errlen, "task key: no Ed25519 private key");
        return -1;
    }

    if (key != NULL && EVP_PKEY_is_a(key, "EC")) {
        if (EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) != 1
            || strcmp(group, "prime256v1") != 0)
        {
            ag_errf(err, errlen, "task key: an EC signing key must be P-256");
            return -1;
        }

        d = NULL;
        ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1
             && BN_bn2binpad(d, ikm, AG_TASK_IKM_LEN) == AG_TASK_IKM_LEN;
        BN_clear_free(d);

        if (ok) {
            return 0;
        }
        ag_errf(err, errlen, "task key: no P-256 private key");
        return -1;
    }

    ag_errf(err, errlen, "task key: the signing key must be Ed25519 or "
            "P-256 to key task tokens");
    return -1;
}


int
ag_task_key_derive(EVP_PKEY *signing_key, unsigned char key[32], char *err,
    size_t errlen)
{
    int            rc;
    char           digest[] = "SHA256";
    char           salt[] = AG_TASK_KDF_SALT, info[] = AG_TASK_KDF_INFO;
    EVP_KDF       *kdf;
    OSSL_PARAM     params[5];
    EVP_KDF_CTX   *kctx;
    unsigned char  ikm[AG_TASK_IKM_LEN];

    ERR_set_mark();

    rc = -1;
    kdf = NULL;
    kctx = NULL;

    if (ag_task_key_ikm(signing_key, ikm, err, errlen) != 0) {
        goto done;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm,
                                                  sizeof(ikm));
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt,
                                                  sizeof(salt) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
                                                  sizeof(info) - 1);
    params[4] = OSSL_PARAM_construct_end();

    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;

    if (kctx == NULL
        || EVP_KDF_derive(kctx, key, AG_TASK_KEY_LEN, params) != 1)
    {
        ag_errf(err, errlen, "task key: HKDF failed");
        goto done;
    }

    rc = 0;

done:

    if (rc != 0) {
        OPENSSL_cleanse(key, AG_TASK_KEY_LEN);
    }
    OPENSSL_cleanse(ikm, sizeof(ikm));
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    ERR_pop_to_mark();

    return rc;
}


/* --- the shape of a task, as a token carries it --------------------------------- */

/* a non-empty list of at most maxn names joined by sep, at most max bytes,
   and (unique) without repeats; returns the number of names, or 0 */
static size_t
ag_task_names_ok(ag_str_t list, char sep, size_t max, size_t maxn, int unique)
{
    size_t    pos, pos2, n, m;
    ag_str_t  a, b;

    if (list.len == 0 || list.len > max) {
        return 0;
    }

    n = 0;
    pos = 0;
    while (ag_task_next(list, sep, &pos, &a)) {
        if (n == maxn || !ag_task_name_ok(a.p, a.len)) {
            return 0;
        }

        pos2 = 0;
        for (m = 0; unique && m < n && ag_task_next(list, sep, &pos2, &b);
             m++)
        {
            if (a.len == b.len && memcmp(a.p, b.p, a.len) == 0) {
                return 0;
            }
        }
        n++;
    }

    return n;
}


static int
ag_task_cnf_ok(ag_str_t cnf)
{
    unsigned char  raw[AG_TASK_CNF_BYTES];

    return cnf.len == 0 || ag_task_hex_decode(cnf, raw) == 0;
}


/*
 * What both mint and verify insist on, so that every token minted verifies:
 * names are names; a root task has no parent and no chain; a child's chain
 * names depth + 1 agents, the last being the task's own.
 */
static int
ag_task_shape_ok(const ag_task_t *t)
{
    ag_str_t  last;

    if (!ag_task_id_valid(t->id.p, t->id.len)
        || !ag_task_name_ok(t->agent.p, t->agent.len)
        || !ag_task_name_ok(t->intent.p, t->intent.len)
        || ag_task_names_ok(t->tools, ',', AG_TASK_TOOLS_MAX,
                            AG_TASK_LIST_MAX, 1) == 0
        || !ag_task_cnf_ok(t->cnf)
        || t->depth < 0 || t->depth > AG_TASK_DEPTH_MAX)
    {
        return 0;
    }

    if (t->depth == 0) {
        return t->parent.len == 0 && t->chain.len == 0;
    }

    if (!ag_task_id_valid(t->parent.p, t->parent.len)
        || ag_task_names_ok(t->chain, '>', AG_TASK_CHAIN_MAX,
                            (size_t) t->depth + 1, 0)
           != (size_t) t->depth + 1)
    {
        return 0;
    }

    if (t->chain.len <= t->agent.len) {
        return 0;
    }

    last.len = t->agent.len;
    last.p = t->chain.p + t->chain.len - last.len;

    return last.p[-1] == '>' && memcmp(last.p, t->agent.p, last.len) == 0;
}


/* --- tokens ------------------------------------------------------------------------ */

static int
ag_task_mac(const unsigned char key[32], const char *data, size_t len,
    unsigned char mac[AG_TASK_MAC_LEN])
{
    size_t          maclen;
    unsigned char  *r;

    ERR_set_mark();
    r = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, AG_TASK_KEY_LEN,
                  (const unsigned char *) data, len, mac, AG_TASK_MAC_LEN,
                  &maclen);
    ERR_pop_to_mark();

    return r != NULL && maclen == AG_TASK_MAC_LEN ? 0 : -1;
}


static json_t *
ag_task_json_str(ag_str_t s, int null_if_empty)
{
    if (s.len == 0) {
        return null_if_empty ? json_null() : json_string("");
    }

    return json_stringn(s.p, s.len);
}


static json_t *
ag_task_tools_array(ag_str_t tools)
{
    size_t    pos;
    json_t   *a;
    ag_str_t  name;

    a = json_array();
    if (a == NULL) {
        return NULL;
    }

    pos = 0;
    while (ag_task_next(tools, ',', &pos, &name)) {
        if (json_array_append_new(a, json_stringn(name.p, name.len)) != 0) {
            json_decref(a);
            return NULL;
        }
    }

    return a;
}


static json_t *
ag_task_cnf_json(ag_str_t hex)
{
    char           b64[AG_TASK_CNF_LEN];
    unsigned char  raw[AG_TASK_CNF_BYTES];

    if (ag_task_hex_decode(hex, raw) != 0
        || ag_b64url_encode(raw, sizeof(raw), b64, sizeof(b64)) < 0)
    {
        return NULL;
    }

    return json_pack("{s:s}", "x5t#S256", b64);
}


static json_t *
ag_task_claims(const char *iss, const ag_task_t *t, int64_t now)
{
    int      rc;
    json_t  *c;

    c = json_object();
    if (c == NULL) {
        return NULL;
    }

    /* json_object_set_new() takes each value, NULL or not, so one check of
       all of them covers every allocation */

    rc = json_object_set_new(c, "iss", json_string(iss));
    rc |= json_object_set_new(c, "tid", ag_task_json_str(t->id, 0));
    rc |= json_object_set_new(c, "sub", ag_task_json_str(t->agent, 0));
    rc |= json_object_set_new(c, "intent", ag_task_json_str(t->intent, 0));
    rc |= json_object_set_new(c, "tools", ag_task_tools_array(t->tools));
    rc |= json_object_set_new(c, "chain", ag_task_json_str(t->chain, 0));
    rc |= json_object_set_new(c, "depth", json_integer(t->depth));
    rc |= json_object_set_new(c, "iat", json_integer(now));
    rc |= json_object_set_new(c, "exp", json_integer(t->expires));

    if (t->parent.len) {
        rc |= json_object_set_new(c, "parent", ag_task_json_str(t->parent, 0));
    }
    if (t->cnf.len) {
        rc |= json_object_set_new(c, "cnf", ag_task_cnf_json(t->cnf));
    }

    if (rc != 0) {
        json_decref(c);
        return NULL;
    }

    return c;
}


/* header.payload.mac into a new string */
static char *
ag_task_jws(const unsigned char key[32], const char *payload, size_t plen)
{
    char           *tok;
    size_t          size, pos;
    unsigned char   mac[AG_TASK_MAC_LEN];

    size = AG_TASK_HEADER_B64 + 1 + ag_task_b64len(plen) + 1
           + AG_TASK_MAC_B64 + 1;
    if (plen > AG_TASK_TOKEN_MAX || size > AG_TASK_TOKEN_MAX + 1) {
        return NULL;
    }

    tok = malloc(size);
    if (tok == NULL) {
        return NULL;
    }

    /* sized for all three parts: the encoders cannot fail */

    pos = (size_t) ag_b64url_encode((const unsigned char *) AG_TASK_HEADER,
                                    sizeof(AG_TASK_HEADER) - 1, tok, size);
    tok[pos++] = '.';
    pos += (size_t) ag_b64url_encode((const unsigned char *) payload, plen,
                                     tok + pos, size - pos);

    if (ag_task_mac(key, tok, pos, mac) != 0) {
        free(tok);
        return NULL;
    }

    tok[pos++] = '.';
    pos += (size_t) ag_b64url_encode(mac, sizeof(mac), tok + pos, size - pos);
    tok[pos] = '\0';

    return tok;
}


int
ag_task_token_mint(const unsigned char key[32], const char *iss,
    const ag_task_t *t, int64_t now, char **out, char *err, size_t errlen)
{
    char    *payload;
    json_t  *claims;

    *out = NULL;

    if (iss == NULL || *iss == '\0' || !ag_task_shape_ok(t) || now < 0
        || t->expires <= now)
    {
        ag_errf(err, errlen, "task token: the task is not well-formed");
        return -1;
    }

    claims = ag_task_claims(iss, t, now);
    payload = claims ? json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS)
                     : NULL;
    json_decref(claims);

    if (payload == NULL) {
        ag_errf(err, errlen, "task token: cannot encode the claims");
        return -1;
    }

    *out = ag_task_jws(key, payload, strlen(payload));
    free(payload);

    if (*out == NULL) {
        ag_errf(err, errlen, "task token: cannot mint (over %d bytes, or the "
                "MAC failed)", AG_TASK_TOKEN_MAX);
        return -1;
    }

    return 0;
}


/* the three segments of a compact JWS, each non-empty; -1 otherwise */
static int
ag_task_segments(const char *tok, size_t len, ag_str_t seg[3])
{
    size_t       i;
    const char  *p, *end, *dot;

    p = tok;
    end = tok + len;

    for (i = 0; i < 3; i++) {
        dot = memchr(p, '.', (size_t) (end - p));
        if ((dot == NULL) != (i == 2)) {
            return -1;
        }

        seg[i].p = p;
        seg[i].len = (size_t) ((dot ? dot : end) - p);
        if (seg[i].len == 0) {
            return -1;
        }

        p = dot ? dot + 1 : end;
    }

    return 0;
}


/*
 * Form and MAC: the exact header, canonical base64url everywhere, and the MAC
 * compared in constant time. On success *raw is the decoded payload (malloc'd,
 * *rawlen bytes), not yet parsed.
 */
static ag_task_token_status_t
ag_task_token_form(const unsigned char key[32], const char *tok, size_t len,
    unsigned char **raw, size_t *rawlen, char *err, size_t errlen)
{
    long            n;
    char            hdr[AG_TASK_HEADER_B64 + 1];
    ag_str_t        seg[3];
    unsigned char  *buf, mac[AG_TASK_MAC_LEN], got[AG_TASK_MAC_LEN];

    (void) ag_b64url_encode((const unsigned char *) AG_TASK_HEADER,
                            sizeof(AG_TASK_HEADER) - 1, hdr, sizeof(hdr));

    if (ag_task_segments(tok, len, seg) != 0) {
        ag_errf(err, errlen, "task token: not three segments");
        return AG_TASK_TOKEN_MALFORMED;
    }

    if (seg[0].len != AG_TASK_HEADER_B64
        || memcmp(seg[0].p, hdr, AG_TASK_HEADER_B64) != 0)
    {
        ag_errf(err, errlen, "task token: not a task token (header)");
        return AG_TASK_TOKEN_MALFORMED;
    }

    buf = malloc(seg[1].len);
    if (buf == NULL) {
        ag_errf(err, errlen, "out of memory");
        return AG_TASK_TOKEN_MALFORMED;
    }

    n = ag_b64url_decode(seg[1].p, seg[1].len, buf, seg[1].len);
    if (n <= 0
        || ag_b64url_decode(seg[2].p, seg[2].len, got, sizeof(got))
           != AG_TASK_MAC_LEN)
    {
        free(buf);
        ag_errf(err, errlen, "task token: not base64url");
        return AG_TASK_TOKEN_MALFORMED;
    }

    if (ag_task_mac(key, tok, seg[0].len + 1 + seg[1].len, mac) != 0
        || CRYPTO_memcmp(mac, got, AG_TASK_MAC_LEN) != 0)
    {
        free(buf);
        ag_errf(err, errlen, "task token: bad MAC");
        return AG_TASK_TOKEN_BAD_MAC;
    }

    *raw = buf;
    *rawlen = (size_t) n;

    return AG_TASK_TOKEN_OK;
}


static int
ag_task_claim_str(json_t *c, const char *name, int required, ag_str_t *out)
{
    json_t  *v;

    v = json_object_get(c, name);
    if (v == NULL) {
        out->p = NULL;
        out->len = 0;
        return required ? -1 : 0;
    }
    if (!json_is_string(v)) {
        return -1;
    }

    out->p = json_string_value(v);
    out->len = json_string_length(v);

    return 0;
}


static int
ag_task_claim_int(json_t *c, const char *name, int64_t min, int64_t max,
    int64_t *out)
{
    json_t  *v;

    v = json_object_get(c, name);
    if (!json_is_integer(v)
        || json_integer_value(v) < min || json_integer_value(v) > max)
    {
        return -1;
    }

    *out = json_integer_value(v);
    return 0;
}


/* "tools" joined by ',' into "_tools" of the claims; t->tools points there */
static int
ag_task_claim_tools(json_t *c, ag_task_t *t)
{
    char     joined[AG_TASK_TOOLS_MAX + 1];
    size_t   i, n, len;
    json_t  *a, *v;

    a = json_object_get(c, "tools");
    n = json_array_size(a);
    if (!json_is_array(a) || n == 0 || n > AG_TASK_LIST_MAX) {
        return -1;
    }

    len = 0;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v)
            || !ag_task_name_ok(json_string_value(v), json_string_length(v))
            || json_string_length(v) + (i > 0) > AG_TASK_TOOLS_MAX - len)
        {
            return -1;
        }
        if (i > 0) {
            joined[len++] = ',';
        }
        memcpy(joined + len, json_string_value(v), json_string_length(v));
        len += json_string_length(v);
    }

    v = json_stringn(joined, len);
    if (json_object_set_new(c, "_tools", v) != 0) {
        return -1;
    }

    t->tools.p = json_string_value(v);
    t->tools.len = len;
    return 0;
}


/* cnf {"x5t#S256": base64url} as lower-case hex into "_cnf" of the claims */
static int
ag_task_claim_cnf(json_t *c, ag_task_t *t)
{
    char           hex[AG_TASK_CNF_LEN + 1];
    json_t        *cnf, *v;
    unsigned char  raw[AG_TASK_CNF_BYTES];

    cnf = json_object_get(c, "cnf");
    if (cnf == NULL) {
        return 0;
    }

    v = json_object_get(cnf, "x5t#S256");
    if (!json_is_object(cnf) || json_object_size(cnf) != 1
        || !json_is_string(v)
        || ag_b64url_decode(json_string_value(v), json_string_length(v), raw,
                            sizeof(raw)) != AG_TASK_CNF_BYTES)
    {
        return -1;
    }

    ag_hex_encode(raw, sizeof(raw), hex);
    hex[2 * sizeof(raw)] = '\0';

    v = json_string(hex);
    if (json_object_set_new(c, "_cnf", v) != 0) {
        return -1;
    }

    t->cnf.p = json_string_value(v);
    t->cnf.len = AG_TASK_CNF_LEN;
    return 0;
}


static int
ag_task_claim_keys(json_t *c)
{
    static const char *const  known[] = {
        "iss", "tid", "sub", "intent", "tools", "chain", "depth", "parent",
        "cnf", "iat", "exp", NULL
    };
    size_t       i;
    json_t      *v;
    const char  *key;

    json_object_foreach(c, key, v) {
        for (i = 0; known[i] != NULL && strcmp(key, known[i]) != 0; i++) {
            /* void */
        }
        if (known[i] == NULL) {
            return -1;
        }
    }

    return 0;
}


/* every claim, typed; t filled on success */
static int
ag_task_claims_read(json_t *c, const char *iss, ag_task_t *t)
{
    int64_t   depth;
    ag_str_t  s;

    memset(t, 0, sizeof(*t));

    if (ag_task_claim_keys(c) != 0
        || ag_task_claim_str(c, "iss", 1, &s) != 0 || !ag_task_str_eq(s, iss)
        || ag_task_claim_str(c, "tid", 1, &t->id) != 0
        || ag_task_claim_str(c, "sub", 1, &t->agent) != 0
        || ag_task_claim_str(c, "intent", 1, &t->intent) != 0
        || ag_task_claim_str(c, "chain", 1, &t->chain) != 0
        || ag_task_claim_str(c, "parent", 0, &t->parent) != 0
        || ag_task_claim_int(c, "depth", 0, AG_TASK_DEPTH_MAX, &depth) != 0
        || ag_task_claim_int(c, "iat", 0, INT64_MAX, &t->granted) != 0
        || ag_task_claim_int(c, "exp", 1, INT64_MAX, &t->expires) != 0
        || (t->parent.p != NULL && t->parent.len == 0)
        || ag_task_claim_tools(c, t) != 0
        || ag_task_claim_cnf(c, t) != 0)
    {
        return -1;
    }

    t->depth = (int) depth;

    return ag_task_shape_ok(t) ? 0 : -1;
}


ag_task_token_status_t
ag_task_token_verify(const unsigned char key[32], const char *iss,
    const char *tok, size_t len, int64_t now, json_t **claims, ag_task_t *t,
    char *err, size_t errlen)
{
    size_t                   rawlen;
    json_t                  *c;
    ag_task_t                tt;
    unsigned char           *raw;
    ag_task_token_status_t   s;

    *claims = NULL;

    if (tok == NULL || len == 0 || len > AG_TASK_TOKEN_MAX) {
        ag_errf(err, errlen, "task token: empty or over %d bytes",
                AG_TASK_TOKEN_MAX);
        return AG_TASK_TOKEN_MALFORMED;
    }

    s = ag_task_token_form(key, tok, len, &raw, &rawlen, err, errlen);
    if (s != AG_TASK_TOKEN_OK) {
        return s;
    }

    /* authentic from here on: only now is the payload parsed */

    c = ag_json_parse((const char *) raw, rawlen, NULL, 0);
    free(raw);

    if (!json_is_object(c) || ag_task_claims_read(c, iss, &tt) != 0) {
        json_decref(c);
        ag_errf(err, errlen, "task token: malformed claims");
        return AG_TASK_TOKEN_MALFORMED;
    }

    if (tt.expires <= now) {
        json_decref(c);
        ag_errf(err, errlen, "task token: expired");
        return AG_TASK_TOKEN_EXPIRED;
    }

    *t = tt;
    *claims = c;

    return AG_TASK_TOKEN_OK;
}


/* --- a declaration's body ------------------------------------------------------------ */

static int
ag_task_body_keys(json_t *body, ag_task_error_t *e)
{
    json_t      *v;
    const char  *key;

    if (!json_is_object(body)) {
        return ag_task_fail(e, 400, "bad_request",
                            "the body must be a JSON object");
    }

    json_object_foreach(body, key, v) {
        if (strcmp(key, "intent") != 0 && strcmp(key, "ttl") != 0
            && strcmp(key, "tools") != 0 && strcmp(key, "purpose") != 0)
        {
            if (ag_task_name_ok(key, strlen(key))) {
                return ag_task_fail(e, 400, "bad_request", "unknown key "
                                    "\"%s\" (a task has intent, ttl, tools "
                                    "and purpose)", key);
            }
            return ag_task_fail(e, 400, "bad_request", "unknown key (a task "
                                "has intent, ttl, tools and purpose)");
        }
    }

    return 0;
}


/* "tools": a non-empty list of unique tool names */
static int
ag_task_body_tools(json_t *a, ag_task_error_t *e)
{
    size_t   i, j, n;
    json_t  *v, *w;

    n = json_array_size(a);
    if (!json_is_array(a) || n == 0 || n > AG_TASK_LIST_MAX) {
        return ag_task_fail(e, 400, "bad_request", "tools must be a list of "
                            "1 to %d tool names", AG_TASK_LIST_MAX);
    }

    json_array_foreach(a, i, v) {
        if (!json_is_string(v)
            || !ag_task_name_ok(json_string_value(v), json_string_length(v)))
        {
            return ag_task_fail(e, 400, "bad_request", "tools/%zu is not a "
                                "tool name", i);
        }
        for (j = 0; j < i; j++) {
            w = json_array_get(a, j);
            if (json_equal(v, w)) {
                return ag_task_fail(e, 400, "bad_request", "tool %s is "
                                    "listed twice", json_string_value(v));
            }
        }
    }

    return 0;
}


static int
ag_task_body_read(json_t *body, ag_task_decl_t *d, ag_task_error_t *e)
{
    json_t  *v;

    if (ag_task_body_keys(body, e) != 0) {
        return -1;
    }

    v = json_object_get(body, "intent");
    if (!json_is_string(v) || json_string_length(v) == 0) {
        return ag_task_fail(e, 400, "bad_request", "intent is required, as "
                            "the name of an intent");
    }
    d->intent.p = json_string_value(v);
    d->intent.len = json_string_length(v);

    v = json_object_get(body, "ttl");
    d->ttl = json_is_string(v) ? ag_duration_parse(json_string_value(v),
                                                   json_string_length(v))
                               : -1;
    if (d->ttl <= 0) {
        return ag_task_fail(e, 400, "bad_request", "ttl is required, as a "
                            "duration longer than 0 like \"90s\" or \"10m\"");
    }

    d->tools = json_object_get(body, "tools");
    if (d->tools != NULL && ag_task_body_tools(d->tools, e) != 0) {
        return -1;
    }

    v = json_object_get(body, "purpose");
    if (v != NULL && (!json_is_string(v)
                      || json_string_length(v) > AG_TASK_PURPOSE_MAX))
    {
        return ag_task_fail(e, 400, "bad_request", "purpose must be a string "
                            "of at most %d bytes", AG_TASK_PURPOSE_MAX);
    }
    d->purpose.p = v ? json_string_value(v) : NULL;
    d->purpose.len = v ? json_string_length(v) : 0;

    return 0;
}


/* --- policy checks -------------------------------------------------------------- */

/* the intent, when it exists and lists the agent and the ttl fits */
static const ag_intent_t *
ag_task_intent(const ag_policy_t *p, const ag_agent_t *agent,
    const ag_task_decl_t *d, ag_task_error_t *e)
{
    char                 want[32], max[32];
    const ag_intent_t   *in;

    in = ag_policy_intent(p, d->intent.p, d->intent.len);
    if (in == NULL) {
        if (ag_task_name_ok(d->intent.p, d->intent.len)) {
            ag_task_fail(e, 403, "denied", "intent %.*s is not in the policy",
                         (int) d->intent.len, d->intent.p);
        } else {
            ag_task_fail(e, 403, "denied", "the intent is not in the policy");
        }
        return NULL;
    }

    if (!ag_task_list_has(in->agents, in->nagents,
                          (ag_str_t) { agent->name, strlen(agent->name) }))
    {
        ag_task_fail(e, 403, "denied", "agent %s may not declare intent %s",
                     agent->name, in->name);
        return NULL;
    }

    if (d->ttl > in->max_ttl) {
        ag_task_duration_fmt(d->ttl, want, sizeof(want));
        ag_task_duration_fmt(in->max_ttl, max, sizeof(max));
        ag_task_fail(e, 400, "bad_request", "ttl %s is over the intent's "
                     "max_ttl %s", want, max);
        return NULL;
    }

    return in;
}


/* a child keeps its parent's intent, stays within max_depth and cannot
   outlive its parent */
static int
ag_task_check_parent(const ag_intent_t *in, const ag_task_t *parent,
    int64_t now, ag_task_error_t *e)
{
    if (!ag_task_str_eq(parent->intent, in->name)) {
        return ag_task_fail(e, 403, "denied", "a delegated task must keep its "
                            "parent's intent");
    }

    if (parent->depth < 0 || parent->depth >= in->max_depth) {
        return ag_task_fail(e, 403, "denied", "delegation depth %d is over "
                            "the intent's max_depth %d", parent->depth + 1,
                            in->max_depth);
    }

    if (parent->expires <= now) {
        return ag_task_fail(e, 403, "denied", "the parent task has expired");
    }

    return 0;
}


static int
ag_task_add_tool(ag_task_buf_t *b, size_t start, const char *name, size_t len,
    ag_task_error_t *e)
{
    if (b->pos > start && ag_task_buf_add(b, ",", 1) != 0) {
        return ag_task_buf_full(e);
    }

    if (ag_task_buf_add(b, name, len) != 0) {
        return ag_task_buf_full(e);
    }

    if (b->pos - start > AG_TASK_TOOLS_MAX) {
        return ag_task_fail(e, 400, "bad_request", "the task's tools are "
                            "over %d bytes: name fewer tools",
                            AG_TASK_TOOLS_MAX);
    }

    return 0;
}


/* the tools asked for, each in the intent and the parent's tools */
static int
ag_task_tools_asked(const ag_intent_t *in, json_t *want,
    const ag_task_t *parent, ag_task_buf_t *b, size_t start,
    ag_task_error_t *e)
{
    size_t    i;
    json_t   *v;
    ag_str_t  name;

    json_array_foreach(want, i, v) {
        name.p = json_string_value(v);
        name.len = json_string_length(v);

        if (!ag_task_list_has(in->tools, in->ntools, name)) {
            return ag_task_fail(e, 403, "denied", "tool %s is not in intent "
                                "%s", name.p, in->name);
        }
        if (parent != NULL
            && !ag_task_has_tool(parent->tools, name.p, name.len))
        {
            return ag_task_fail(e, 403, "denied", "a delegated task cannot "
                                "widen its tools: %s is not in the parent "
                                "task", name.p);
        }
        if (ag_task_add_tool(b, start, name.p, name.len, e) != 0) {
            return -1;
        }
    }

    return 0;
}


/* the default: the intent's tools, and for a child only the parent's */
static int
ag_task_tools_default(const ag_intent_t *in, const ag_task_t *parent,
    ag_task_buf_t *b, size_t start, ag_task_error_t *e)
{
    size_t  i, len;

    for (i = 0; i < in->ntools; i++) {
        len = strlen(in->tools[i]);
        if (parent != NULL
            && !ag_task_has_tool(parent->tools, in->tools[i], len))
        {
            continue;
        }
        if (ag_task_add_tool(b, start, in->tools[i], len, e) != 0) {
            return -1;
        }
    }

    if (b->pos == start) {
        return ag_task_fail(e, 403, "denied", "no tool of the parent task is "
                            "in intent %s", in->name);
    }

    return 0;
}


static int
ag_task_chain(const ag_task_t *parent, const ag_agent_t *agent,
    ag_task_buf_t *b, ag_str_t *chain, ag_task_error_t *e)
{
    size_t    start, alen;
    ag_str_t  head;

    head = parent->chain.len ? parent->chain : parent->agent;
    alen = strlen(agent->name);

    if (head.len + 1 + alen > AG_TASK_CHAIN_MAX) {
        return ag_task_fail(e, 400, "bad_request", "the delegation chain "
                            "would be over %d bytes", AG_TASK_CHAIN_MAX);
    }

    start = b->pos;
    if (ag_task_buf_add(b, head.p, head.len) != 0
        || ag_task_buf_add(b, ">", 1) != 0
        || ag_task_buf_add(b, agent->name, alen) != 0
        || ag_task_buf_end(b, start, chain) != 0)
    {
        return ag_task_buf_full(e);
    }

    return 0;
}


/* id, tools and chain into the buffer */
static int
ag_task_strings(const ag_intent_t *in, const ag_agent_t *agent,
    const ag_task_decl_t *d, const ag_task_t *parent, ag_task_t *t,
    ag_task_buf_t *b, ag_task_error_t *e)
{
    int     rc;
    size_t  start;

    if (b->len - b->pos <= AG_TASK_ID_LEN) {
        return ag_task_buf_full(e);
    }
    if (ag_task_id_new(b->p + b->pos) != 0) {
        return ag_task_fail(e, 503, "gateway_error", "cannot make a task id");
    }
    t->id.p = b->p + b->pos;
    t->id.len = AG_TASK_ID_LEN;
    b->pos += AG_TASK_ID_LEN + 1;

    start = b->pos;
    rc = d->tools ? ag_task_tools_asked(in, d->tools, parent, b, start, e)
                  : ag_task_tools_default(in, parent, b, start, e);
    if (rc != 0) {
        return -1;
    }
    if (ag_task_buf_end(b, start, &t->tools) != 0) {
        return ag_task_buf_full(e);
    }

    return parent ? ag_task_chain(parent, agent, b, &t->chain, e) : 0;
}


int
ag_task_plan(const ag_policy_t *p, const ag_agent_t *agent, ag_str_t cnf,
    json_t *body, const ag_task_t *parent, int64_t now, ag_task_t *t,
    char *buf, size_t buflen, ag_task_error_t *e)
{
    ag_task_buf_t        b;
    ag_task_decl_t       d;
    const ag_intent_t   *in;

    memset(t, 0, sizeof(*t));
    memset(&d, 0, sizeof(d));

    if (ag_task_body_read(body, &d, e) != 0) {
        return -1;
    }

    in = ag_task_intent(p, agent, &d, e);
    if (in == NULL) {
        return -1;
    }

    if (parent != NULL && ag_task_check_parent(in, parent, now, e) != 0) {
        return -1;
    }

    if (!ag_task_cnf_ok(cnf) || !ag_task_name_ok(agent->name,
                                                 strlen(agent->name)))
    {
        return ag_task_fail(e, 503, "gateway_error", "the agent's identity "
                            "cannot be bound to a task");
    }

    b.p = buf;
    b.len = buflen;
    b.pos = 0;

    if (ag_task_strings(in, agent, &d, parent, t, &b, e) != 0) {
        return -1;
    }

    t->agent.p = agent->name;
    t->agent.len = strlen(agent->name);
    t->owner.p = agent->owner;
    t->owner.len = agent->owner ? strlen(agent->owner) : 0;
    t->intent.p = in->name;
    t->intent.len = strlen(in->name);
    t->cnf = cnf;
    t->purpose = d.purpose;
    t->state = AG_TASK_LIVE;
    t->granted = now;
    t->expires = ag_task_add(now, d.ttl);

    if (parent != NULL) {
        t->parent = parent->id;
        t->depth = parent->depth + 1;
        if (t->expires > parent->expires) {
            t->expires = parent->expires;
        }
    }

    return 0;
}


/* the intent still exists and still allows the task as it is */
static const ag_intent_t *
ag_task_renew_intent(const ag_policy_t *p, const ag_task_t *t,
    ag_task_error_t *e)
{
    size_t              pos;
    ag_str_t            tool;
    const ag_intent_t  *in;

    in = ag_policy_intent(p, t->intent.p, t->intent.len);
    if (in == NULL) {
        ag_task_fail(e, 403, "denied", "the task cannot be renewed: intent "
                     "%.*s is not in the policy", (int) t->intent.len,
                     t->intent.p);
        return NULL;
    }

    if (!ag_task_list_has(in->agents, in->nagents, t->agent)) {
        ag_task_fail(e, 403, "denied", "the task cannot be renewed: agent "
                     "%.*s may no longer declare intent %s",
                     (int) t->agent.len, t->agent.p, in->name);
        return NULL;
    }

    pos = 0;
    while (ag_task_next(t->tools, ',', &pos, &tool)) {
        if (!ag_task_list_has(in->tools, in->ntools, tool)) {
            ag_task_fail(e, 403, "denied", "the task cannot be renewed: tool "
                         "%.*s is no longer in intent %s", (int) tool.len,
                         tool.p, in->name);
            return NULL;
        }
    }

    if (t->depth > in->max_depth) {
        ag_task_fail(e, 403, "denied", "the task cannot be renewed: depth %d "
                     "is over the intent's max_depth %d", t->depth,
                     in->max_depth);
        return NULL;
    }

    return in;
}


int
ag_task_plan_renew(const ag_policy_t *p, const ag_task_t *t,
    const ag_task_t *parent, int64_t ttl_req, int64_t now,
    int64_t *expires, ag_task_error_t *e)
{
    char                 want[32], max[32];
    int64_t              exp, cap;
    const ag_intent_t   *in;

    in = ag_task_renew_intent(p, t, e);
    if (in == NULL) {
        return -1;
    }

    if (ttl_req < 0) {
        return ag_task_fail(e, 400, "bad_request", "ttl must be a duration, "
                            "or absent for the intent's max_ttl");
    }

    if (ttl_req > in->max_ttl) {
        ag_task_duration_fmt(ttl_req, want, sizeof(want));
        ag_task_duration_fmt(in->max_ttl, max, sizeof(max));
        return ag_task_fail(e, 400, "bad_request", "ttl %s is over the "
                            "intent's max_ttl %s", want, max);
    }

    exp = ag_task_add(now, ttl_req ? ttl_req : in->max_ttl);

    cap = ag_task_add(t->granted, in->max_lifetime);
    if (exp > cap) {
        exp = cap;
    }
    if (exp <= now) {
        return ag_task_fail(e, 403, "denied", "the task reached its "
                            "max_lifetime");
    }

    if (parent != NULL && exp > parent->expires) {
        exp = parent->expires;
        if (exp <= now) {
            return ag_task_fail(e, 403, "denied", "the task cannot be "
                                "renewed: its parent task has expired");
        }
    }

    *expires = exp > t->expires ? exp : t->expires;
    return 0;
}


int
ag_task_has_tool(ag_str_t tools, const char *tool, size_t len)
{
    size_t    pos;
    ag_str_t  name;

    pos = 0;
    while (ag_task_next(tools, ',', &pos, &name)) {
        if (name.len == len && (len == 0 || memcmp(name.p, tool, len) == 0)) {
            return 1;
        }
    }

    return 0;
}


/* --- budgets ------------------------------------------------------------------ */

/*
 * The rate is a token bucket of n tokens refilled at n per `per` seconds,
 * counted in milli-tokens. Only the time that produced whole milli-tokens is
 * consumed, so that slow rates (1/h gains a milli-token every 3.6 s) still
 * refill when calls come often; time past a full bucket is dropped.
 */
static void
ag_task_bucket_refill(int64_t n, int64_t per, int64_t now_ms, int64_t *mtok,
    int64_t *at_ms)
{
    int64_t  cap, elapsed, add, used;

    cap = n * 1000;

    if (*at_ms <= 0 || *mtok < 0 || *mtok > cap) {
        /* a new task, or a bucket from before a policy change */
        *mtok = *at_ms <= 0 ? cap : (*mtok < 0 ? 0 : cap);
        *at_ms = now_ms;
        return;
    }

    if (now_ms <= *at_ms) {
        /* the clock went back: refill from now on */
        *at_ms = now_ms;
        return;
    }

    elapsed = now_ms - *at_ms;
    if (elapsed >= per * 1000) {
        *mtok = cap;
        *at_ms = now_ms;
        return;
    }

    /* elapsed < per * 1000 here, so elapsed * n < cap * per: no overflow */

    add = elapsed * n / per;
    if (*mtok + add >= cap) {
        *mtok = cap;
        *at_ms = now_ms;
        return;
    }

    used = (add * per + n - 1) / n;
    *mtok += add;
    *at_ms += used;
}


int
ag_task_budget_spend(const ag_intent_t *in, ag_task_t *t, int64_t now_ms,
    int64_t *retry_after)
{
    int64_t  mtok, at, n, per, wait, now_s;

    *retry_after = 0;

    if (in->budget_calls > 0 && t->calls >= in->budget_calls) {
        /* a call budget never refills: it is back only with a new task */
        now_s = now_ms > 0 ? now_ms / 1000 : 0;
        *retry_after = t->expires > now_s + 1 ? t->expires - now_s : 1;
        return -1;
    }

    n = in->budget_rate_n;
    per = in->budget_rate_per;

    if (n > 0 && per > 0 && n <= INT64_MAX / 1000 / per) {
        mtok = t->bucket_mtok;
        at = t->bucket_ms;
        ag_task_bucket_refill(n, per, now_ms, &mtok, &at);

        if (mtok < 1000) {
            /* at + ceil((1000 - mtok) * per / n) ms makes the missing ones */
            wait = at + ((1000 - mtok) * per + n - 1) / n - now_ms;
            wait = (wait + 999) / 1000;
            *retry_after = wait > 1 ? wait : 1;
            return -1;
        }

        t->bucket_mtok = mtok - 1000;
        t->bucket_ms = at;
    }

    t->calls++;
    return 0;
}


/* --- JSON ---------------------------------------------------------------------- */

const char *
ag_task_state_name(ag_task_state_t s)
{
    switch (s) {
    case AG_TASK_LIVE:
        return "live";
    case AG_TASK_ENDED:
        return "ended";
    case AG_TASK_REVOKED:
        return "revoked";
    case AG_TASK_EXPIRED:
        return "expired";
    }

    return "unknown";
}


json_t *
ag_task_tools_json(ag_str_t tools)
{
    return ag_task_tools_array(tools);
}


void
ag_time_rfc3339(int64_t t, char *out, size_t outlen)
{
    time_t     tt;
    struct tm  tm;

    if (out == NULL || outlen == 0) {
        return;
    }

    /* clamped to what four year digits can write, so the text is always
       RFC 3339 */

    if (t < 0) {
        t = 0;
    } else if (t > AG_TASK_TIME_MAX) {
        t = AG_TASK_TIME_MAX;
    }

    tt = (time_t) t;
    if (gmtime_r(&tt, &tm) == NULL
        || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        out[0] = '\0';
    }
}


static json_t *
ag_task_json_time(int64_t t)
{
    char  buf[32];

    if (t == 0) {
        return json_null();
    }

    ag_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}


json_t *
ag_task_to_json(const ag_task_t *t, int64_t now)
{
    int               rc;
    json_t           *o;
    ag_task_state_t   state;

    state = t->state;
    if (state == AG_TASK_LIVE && t->expires <= now) {
        state = AG_TASK_EXPIRED;
    }

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    rc = json_object_set_new(o, "task", ag_task_json_str(t->id, 0));
    rc |= json_object_set_new(o, "agent", ag_task_json_str(t->agent, 0));
    rc |= json_object_set_new(o, "owner", ag_task_json_str(t->owner, 0));
    rc |= json_object_set_new(o, "intent", ag_task_json_str(t->intent, 0));
    rc |= json_object_set_new(o, "tools", ag_task_tools_array(t->tools));
    rc |= json_object_set_new(o, "parent", ag_task_json_str(t->parent, 1));
    rc |= json_object_set_new(o, "chain", ag_task_json_str(t->chain, 1));
    rc |= json_object_set_new(o, "depth", json_integer(t->depth));
    rc |= json_object_set_new(o, "purpose", ag_task_json_str(t->purpose, 1));
    rc |= json_object_set_new(o, "state",
                              json_string(ag_task_state_name(state)));
    rc |= json_object_set_new(o, "granted_at", ag_task_json_time(t->granted));
    rc |= json_object_set_new(o, "expires_at", ag_task_json_time(t->expires));
    rc |= json_object_set_new(o, "ended_at", ag_task_json_time(t->ended));
    rc |= json_object_set_new(o, "calls", json_integer(t->calls));

    if (rc != 0) {
        json_decref(o);
        return NULL;
    }

    return o;
}
