/*
 * Tasks: ids, the task token key (checked against HKDF written out by hand),
 * tokens (round trips and every refusal, with tokens crafted and MAC'd here),
 * declarations, delegation and renewals against real policies, budgets, and
 * the API's JSON.
 *
 * Policies and bodies are written with ' for " to keep them readable.
 */

#include <inttypes.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "unit.h"
#include "unit_policy.h"
#include "ag_json.h"
#include "ag_jwt.h"
#include "ag_policy.h"
#include "ag_task.h"


#define NOW      INT64_C(1795428000)        /* 2026-11-23T10:00:00Z */
#define ISS      "https://gw.example.org"
#define HDR      "{\"alg\":\"HS256\",\"typ\":\"agentgov-task+jwt\"}"
#define HEXCNF   "00112233445566778899aabbccddeeff" \
                 "00112233445566778899aabbccddeeff"

static const unsigned char key1[32] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
};
static const unsigned char key2[32] = { 9 };

static const char *policy_v1 =
    "{'agentgov': 1, 'default': 'deny',"
    " 'agents': {'a': {'spiffe': 'spiffe://x/a', 'owner': 'team-a'},"
    "            'b': {'spiffe': 'spiffe://x/b', 'owner': 'team-b'},"
    "            'c': {'spiffe': 'spiffe://x/c', 'owner': 'team-c'},"
    "            'z': {'spiffe': 'spiffe://x/z', 'owner': 'team-z'}},"
    " 'tools': {'t1': {}, 't2': {}, 't3': {}, 'other': {}},"
    " 'intents': {"
    "   'triage': {'agents': ['a', 'b', 'c'], 'tools': ['t1', 't2', 't3'],"
    "              'max_ttl': '15m', 'budget': {'calls': 3, 'rate': '2/s'}},"
    "   'shallow': {'agents': ['a', 'b', 'c'], 'tools': ['t1', 't2'],"
    "               'max_ttl': '1h', 'max_lifetime': '2h', 'max_depth': 1},"
    "   'flat': {'agents': ['a', 'b'], 'tools': ['t1'], 'max_ttl': '1h',"
    "            'max_depth': 0},"
    "   'other': {'agents': ['a', 'b'], 'tools': ['other'], 'max_ttl': '1h'}},"
    " 'rules': []}";

/* the same gateway after a reload: b may no longer triage, t3 is gone from
   triage, shallow is gone */
static const char *policy_v2 =
    "{'agentgov': 1, 'default': 'deny',"
    " 'agents': {'a': {'spiffe': 'spiffe://x/a', 'owner': 'team-a'},"
    "            'b': {'spiffe': 'spiffe://x/b', 'owner': 'team-b'}},"
    " 'tools': {'t1': {}, 't2': {}, 't3': {}},"
    " 'intents': {"
    "   'triage': {'agents': ['a'], 'tools': ['t1', 't2'], 'max_ttl': '15m'}},"
    " 'rules': []}";


/* --- helpers ------------------------------------------------------------------ */

static ag_str_t
S(const char *s)
{
    ag_str_t  r;

    r.p = s;
    r.len = strlen(s);
    return r;
}


static int
str_is(ag_str_t s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.p, want, s.len) == 0);
}

#define assert_str(s, want)                                                    \
    do {                                                                       \
        if (!str_is((s), (want))) {                                            \
            fail_msg("\"%.*s\" is not \"%s\"", (int) (s).len,                  \
                     (s).p ? (s).p : "", (want));                              \
        }                                                                      \
    } while (0)


static json_t *
body(const char *text)
{
    char     err[256];
    char    *t = q(text);
    json_t  *v;

    v = ag_json_parse(t, strlen(t), err, sizeof(err));
    free(t);
    if (v == NULL) {
        fail_msg("body refused: %s", err);
    }
    return v;
}


typedef struct {
    char       id[AG_TASK_ID_LEN + 1];
    char       pid[AG_TASK_ID_LEN + 1];
    ag_task_t  t;
} ttask_t;


/* a root task of agent a on triage with t1 and t2 */
static void
root_task(ttask_t *x)
{
    memset(x, 0, sizeof(*x));
    assert_int_equal(ag_task_id_new(x->id), 0);
    x->t.id = S(x->id);
    x->t.agent = S("a");
    x->t.owner = S("team-a");
    x->t.intent = S("triage");
    x->t.tools = S("t1,t2");
    x->t.granted = NOW;
    x->t.expires = NOW + 600;
}


/* a child of agent b under a root task of agent a */
static void
child_task(ttask_t *x)
{
    root_task(x);
    assert_int_equal(ag_task_id_new(x->pid), 0);
    x->t.agent = S("b");
    x->t.parent = S(x->pid);
    x->t.chain = S("a>b");
    x->t.depth = 1;
}


/* header and payload as given, MAC'd with key: what a forger with the key,
   or a gateway of another version, could send */
static char *
craft(const unsigned char key[32], const char *hdr, const char *payload)
{
    char           *tok;
    size_t          hl, pl, size, pos, maclen;
    unsigned char   mac[32];

    hl = strlen(hdr);
    pl = strlen(payload);
    size = (hl + pl) * 2 + 64;
    tok = malloc(size);
    assert_non_null(tok);

    pos = (size_t) ag_b64url_encode((const unsigned char *) hdr, hl, tok, size);
    tok[pos++] = '.';
    pos += (size_t) ag_b64url_encode((const unsigned char *) payload, pl,
                                     tok + pos, size - pos);
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, 32,
                              (unsigned char *) tok, pos, mac, sizeof(mac),
                              &maclen));
    tok[pos++] = '.';
    pos += (size_t) ag_b64url_encode(mac, maclen, tok + pos, size - pos);
    tok[pos] = '\0';

    return tok;
}


static ag_task_token_status_t
verify(const char *tok, size_t len, int64_t now, json_t **claims, ag_task_t *t)
{
    char                     err[256];
    json_t                  *c;
    ag_task_t                tt;
    ag_task_token_status_t   s;

    memset(&tt, 0, sizeof(tt));
    s = ag_task_token_verify(key1, ISS, tok, len, now, &c, &tt, err,
                             sizeof(err));
    if (s == AG_TASK_TOKEN_OK) {
        assert_non_null(c);
    } else {
        assert_null(c);
        assert_true(strlen(err) > 0);
    }

    if (claims != NULL) {
        *claims = c;
    } else {
        json_decref(c);
    }
    if (t != NULL) {
        *t = tt;
    }
    return s;
}


static ag_task_token_status_t
verify_str(const char *tok)
{
    return verify(tok, strlen(tok), NOW, NULL, NULL);
}


static char *
mint(const ag_task_t *t)
{
    char   err[256], *tok;

    if (ag_task_token_mint(key1, ISS, t, NOW, &tok, err, sizeof(err)) != 0) {
        fail_msg("mint: %s", err);
    }
    return tok;
}


/* well-formed claims of a root task, for crafting variations */
static json_t *
claims_base(void)
{
    char     id[AG_TASK_ID_LEN + 1];
    json_t  *c;

    assert_int_equal(ag_task_id_new(id), 0);
    c = json_pack("{s:s, s:s, s:s, s:s, s:[s, s], s:s, s:i, s:I, s:I}",
                  "iss", ISS, "tid", id, "sub", "a", "intent", "triage",
                  "tools", "t1", "t2", "chain", "", "depth", 0,
                  "iat", (json_int_t) NOW, "exp", (json_int_t) NOW + 600);
    assert_non_null(c);
    return c;
}


/* claims c (taken) crafted into a token under key1 and verified */
static ag_task_token_status_t
verify_claims(json_t *c)
{
    char                    *payload, *tok;
    ag_task_token_status_t   s;

    payload = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    assert_non_null(payload);
    tok = craft(key1, HDR, payload);
    s = verify_str(tok);
    free(tok);
    free(payload);
    return s;
}


static json_t *
with(const char *key, json_t *v)
{
    json_t  *c = claims_base();

    assert_int_equal(json_object_set_new(c, key, v), 0);
    return c;
}


static json_t *
without(const char *key)
{
    json_t  *c = claims_base();

    assert_int_equal(json_object_del(c, key), 0);
    return c;
}


/* a declaration by agent `who` under policy p */
static int
plan(const ag_policy_t *p, const char *who, const char *text,
    const ag_task_t *parent, ag_task_t *t, char *buf, ag_task_error_t *e,
    json_t **keep)
{
    int                 rc;
    json_t             *b;
    const ag_agent_t   *agent;

    agent = ag_policy_agent_by_name(p, who, strlen(who));
    assert_non_null(agent);
    b = body(text);
    memset(e, 0, sizeof(*e));
    rc = ag_task_plan(p, agent, S(""), b, parent, NOW, t, buf, AG_TASK_PLAN_BUF,
                      e);
    if (keep != NULL) {
        *keep = b;
    } else {
        json_decref(b);
    }
    return rc;
}


static void
plan_fails_(const ag_policy_t *p, const char *who, const char *text,
    const ag_task_t *parent, int status, const char *want, int line)
{
    char             buf[AG_TASK_PLAN_BUF];
    ag_task_t        t;
    ag_task_error_t  e;

    if (plan(p, who, text, parent, &t, buf, &e, NULL) == 0) {
        fail_msg("line %d: declaration accepted: %s", line, text);
    }
    if (e.status != status || strstr(e.message, want) == NULL) {
        fail_msg("line %d: %d \"%s\", wanted %d \"%s\"", line, e.status,
                 e.message, status, want);
    }
    if (strcmp(e.code, status == 400 ? "bad_request" : "denied") != 0) {
        fail_msg("line %d: code %s for status %d", line, e.code, status);
    }
}

#define plan_fails(p, who, text, parent, status, want)                        \
    plan_fails_(p, who, text, parent, status, want, __LINE__)


/* HKDF-SHA256 (RFC 5869) written out with HMAC, for one output block */
static void
hkdf_by_hand(const unsigned char *ikm, size_t ikmlen, unsigned char out[32])
{
    size_t          len;
    unsigned char   prk[32], msg[64];
    const char     *info = "agentgov task token v1";

    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, "agentgov",
                              8, ikm, ikmlen, prk, sizeof(prk), &len));
    memcpy(msg, info, strlen(info));
    msg[strlen(info)] = 0x01;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, prk,
                              sizeof(prk), msg, strlen(info) + 1, out, 32,
                              &len));
}


/* --- ids ------------------------------------------------------------------------ */

static void
id_format(void **state)
{
    char    id[AG_TASK_ID_LEN + 1];
    size_t  i;

    (void) state;
    assert_int_equal(ag_task_id_new(id), 0);
    assert_int_equal(strlen(id), 22);
    for (i = 0; i < 22; i++) {
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-_", id[i]));
    }
    assert_true(ag_task_id_valid(id, 22));
}


static void
id_unique(void **state)
{
    char    ids[256][AG_TASK_ID_LEN + 1];
    size_t  i, j;

    (void) state;
    for (i = 0; i < 256; i++) {
        assert_int_equal(ag_task_id_new(ids[i]), 0);
        for (j = 0; j < i; j++) {
            assert_string_not_equal(ids[i], ids[j]);
        }
    }
}


static void
id_valid_refusals(void **state)
{
    (void) state;
    assert_true(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAAAA", 22));
    assert_true(ag_task_id_valid("_-_-_-_-_-_-_-_-_-_-_w", 22));
    assert_false(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAAA", 21));
    assert_false(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAAAAA", 23));
    assert_false(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAAA=", 22));
    assert_false(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAA+A", 22));
    assert_false(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAA/A", 22));
    assert_false(ag_task_id_valid("AAAAAAAAAA.AAAAAAAAAAA", 22));
    /* 22 characters carry 132 bits: the last 4 must be zero, so that an id
       has one spelling */
    assert_false(ag_task_id_valid("AAAAAAAAAAAAAAAAAAAAAB", 22));
    assert_false(ag_task_id_valid("", 0));
    assert_false(ag_task_id_valid(NULL, 22));
}


/* --- keys ----------------------------------------------------------------------- */

static void
derive_twice_(EVP_PKEY *k, unsigned char out[32])
{
    char           err[256];
    unsigned char  again[32];

    assert_int_equal(ag_task_key_derive(k, out, err, sizeof(err)), 0);
    assert_int_equal(ag_task_key_derive(k, again, err, sizeof(err)), 0);
    assert_memory_equal(out, again, 32);
}


static void
key_ed25519(void **state)
{
    size_t          len = 32;
    EVP_PKEY       *k1, *k2;
    unsigned char   d1[32], d2[32], seed[32], want[32];

    (void) state;
    k1 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    k2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k1);
    assert_non_null(k2);

    derive_twice_(k1, d1);
    derive_twice_(k2, d2);
    assert_memory_not_equal(d1, d2, 32);

    /* the key is HKDF of the seed, and is not the seed */
    assert_int_equal(EVP_PKEY_get_raw_private_key(k1, seed, &len), 1);
    hkdf_by_hand(seed, 32, want);
    assert_memory_equal(d1, want, 32);
    assert_memory_not_equal(d1, seed, 32);

    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}


static void
key_known_seed(void **state)
{
    char            err[256];
    size_t          i;
    EVP_PKEY       *k;
    unsigned char   seed[32], got[32], want[32];

    (void) state;
    for (i = 0; i < 32; i++) {
        seed[i] = (unsigned char) i;
    }
    k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    assert_non_null(k);
    assert_int_equal(ag_task_key_derive(k, got, err, sizeof(err)), 0);
    hkdf_by_hand(seed, 32, want);
    assert_memory_equal(got, want, 32);
    EVP_PKEY_free(k);
}


static void
key_p256(void **state)
{
    BIGNUM         *d;
    EVP_PKEY       *k1, *k2;
    unsigned char   d1[32], d2[32], scalar[32], want[32];

    (void) state;
    k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k1);
    assert_non_null(k2);

    derive_twice_(k1, d1);
    derive_twice_(k2, d2);
    assert_memory_not_equal(d1, d2, 32);

    /* the key is HKDF of the scalar as 32 bytes big-endian */
    d = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k1, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
    assert_int_equal(BN_bn2binpad(d, scalar, 32), 32);
    BN_clear_free(d);
    hkdf_by_hand(scalar, 32, want);
    assert_memory_equal(d1, want, 32);

    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}


static void
key_refusals(void **state)
{
    char            err[256];
    EVP_PKEY       *k;
    unsigned char   out[32], pub[32] = { 1 }, zero[32] = { 0 };

    (void) state;

    k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    assert_non_null(k);
    memset(out, 0xaa, sizeof(out));
    assert_int_equal(ag_task_key_derive(k, out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Ed25519 or P-256"));
    assert_memory_equal(out, zero, 32);
    EVP_PKEY_free(k);

    k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(k);
    assert_int_equal(ag_task_key_derive(k, out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "P-256"));
    EVP_PKEY_free(k);

    /* a public key has nothing to derive from */
    k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    assert_non_null(k);
    assert_int_equal(ag_task_key_derive(k, out, err, sizeof(err)), -1);
    EVP_PKEY_free(k);

    assert_int_equal(ag_task_key_derive(NULL, out, err, sizeof(err)), -1);
}


/* --- tokens ---------------------------------------------------------------------- */

static void
token_round_trip_root(void **state)
{
    char       *tok;
    json_t     *c;
    ttask_t     x;
    ag_task_t   t;

    (void) state;
    root_task(&x);
    x.t.granted = NOW - 1000;    /* not in the token: iat is */
    x.t.calls = 5;
    tok = mint(&x.t);
    assert_true(strlen(tok) <= AG_TASK_TOKEN_MAX);

    assert_int_equal(verify(tok, strlen(tok), NOW + 10, &c, &t),
                     AG_TASK_TOKEN_OK);
    assert_str(t.id, x.id);
    assert_str(t.agent, "a");
    assert_str(t.intent, "triage");
    assert_str(t.tools, "t1,t2");
    assert_str(t.parent, "");
    assert_str(t.chain, "");
    assert_str(t.cnf, "");
    assert_str(t.owner, "");
    assert_int_equal(t.depth, 0);
    assert_int_equal(t.expires, NOW + 600);
    assert_int_equal(t.granted, NOW);
    assert_int_equal(t.calls, 0);
    assert_int_equal(t.state, AG_TASK_LIVE);

    /* t points into the claims the caller owns */
    assert_ptr_equal(t.tools.p,
                     json_string_value(json_object_get(c, "_tools")));
    assert_null(json_object_get(c, "_cnf"));
    assert_null(json_object_get(c, "parent"));
    assert_null(json_object_get(c, "cnf"));
    assert_string_equal(json_string_value(json_object_get(c, "iss")), ISS);

    json_decref(c);
    free(tok);
}


static void
token_round_trip_child_cnf(void **state)
{
    char       *tok, upper[AG_TASK_CNF_LEN + 1];
    size_t      i;
    json_t     *c, *cnf;
    ttask_t     x;
    ag_task_t   t;

    (void) state;
    child_task(&x);
    for (i = 0; i < AG_TASK_CNF_LEN; i++) {
        upper[i] = (char) (HEXCNF[i] >= 'a' ? HEXCNF[i] - 32 : HEXCNF[i]);
    }
    upper[AG_TASK_CNF_LEN] = '\0';
    x.t.cnf = S(upper);
    x.t.tools = S("t2");
    tok = mint(&x.t);

    assert_int_equal(verify(tok, strlen(tok), NOW, &c, &t), AG_TASK_TOKEN_OK);
    assert_str(t.agent, "b");
    assert_str(t.parent, x.pid);
    assert_str(t.chain, "a>b");
    assert_int_equal(t.depth, 1);
    assert_str(t.tools, "t2");
    assert_str(t.cnf, HEXCNF);       /* back as lower-case hex */

    /* on the wire: the RFC 8705 confirmation, base64url of the bytes */
    cnf = json_object_get(c, "cnf");
    assert_int_equal(json_object_size(cnf), 1);
    assert_string_equal(json_string_value(json_object_get(cnf, "x5t#S256")),
                        "ABEiM0RVZneImaq7zN3u_wARIjNEVWZ3iJmqu8zd7v8");
    json_decref(c);
    free(tok);
}


static void
token_form_exact(void **state)
{
    char           *tok, *d1, *d2, hdr[64], want[64];
    size_t          maclen;
    long            n;
    ttask_t         x;
    unsigned char   mac[32], got[40];

    (void) state;
    root_task(&x);
    tok = mint(&x.t);

    d1 = strchr(tok, '.');
    d2 = strrchr(tok, '.');
    assert_non_null(d1);
    assert_true(d2 > d1);

    n = ag_b64url_decode(tok, (size_t) (d1 - tok), (unsigned char *) hdr,
                         sizeof(hdr) - 1);
    assert_true(n > 0);
    hdr[n] = '\0';
    assert_string_equal(hdr, HDR);

    /* HS256 over header.payload under the key */
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key1, 32,
                              (unsigned char *) tok, (size_t) (d2 - tok), mac,
                              sizeof(mac), &maclen));
    assert_int_equal(ag_b64url_encode(mac, 32, want, sizeof(want)), 43);
    assert_string_equal(d2 + 1, want);
    assert_int_equal(ag_b64url_decode(d2 + 1, strlen(d2 + 1), got, sizeof(got)),
                     32);

    free(tok);
}


static void
token_bad_mac(void **state)
{
    char                     err[256], *tok, *t2;
    json_t                  *c;
    size_t                   len, mid;
    ttask_t                  x;
    ag_task_t                t;

    (void) state;
    root_task(&x);
    tok = mint(&x.t);
    len = strlen(tok);

    /* another gateway's key */
    assert_int_equal(ag_task_token_verify(key2, ISS, tok, len, NOW, &c, &t, err,
                                          sizeof(err)), AG_TASK_TOKEN_BAD_MAC);
    assert_null(c);
    assert_string_equal(err, "task token: bad MAC");

    /* one payload character changed */
    t2 = strdup(tok);
    mid = (size_t) (strchr(t2, '.') - t2) + 10;
    t2[mid] = t2[mid] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_str(t2), AG_TASK_TOKEN_BAD_MAC);

    /* one MAC character changed */
    strcpy(t2, tok);
    t2[len - 5] = t2[len - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_str(t2), AG_TASK_TOKEN_BAD_MAC);

    /* the MAC comes before the payload is parsed: garbage under a wrong key
       is a bad MAC, not a parse error */
    free(t2);
    t2 = craft(key2, HDR, "{\"not json");
    assert_int_equal(verify_str(t2), AG_TASK_TOKEN_BAD_MAC);

    free(t2);
    free(tok);
}


static void
token_header_refusals(void **state)
{
    static const char *const  headers[] = {
        "{\"alg\":\"none\",\"typ\":\"agentgov-task+jwt\"}",
        "{\"alg\":\"HS512\",\"typ\":\"agentgov-task+jwt\"}",
        "{\"alg\":\"ES256\",\"typ\":\"agentgov-task+jwt\"}",
        "{\"alg\":\"hs256\",\"typ\":\"agentgov-task+jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"typ\":\"agentgov-grant+jwt\"}",
        "{\"alg\":\"HS256\"}",
        "{\"typ\":\"agentgov-task+jwt\",\"alg\":\"HS256\"}",
        "{\"alg\": \"HS256\",\"typ\":\"agentgov-task+jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":\"agentgov-task+jwt\",\"kid\":\"k\"}",
        "{\"alg\":\"HS256\",\"typ\":\"agentgov-task+jwt\",\"alg\":\"HS256\"}",
        NULL
    };
    char      *payload, *tok;
    size_t     i;
    json_t    *c;

    (void) state;
    c = claims_base();
    payload = json_dumps(c, JSON_COMPACT);
    json_decref(c);

    tok = craft(key1, HDR, payload);
    assert_int_equal(verify_str(tok), AG_TASK_TOKEN_OK);
    free(tok);

    for (i = 0; headers[i] != NULL; i++) {
        tok = craft(key1, headers[i], payload);
        if (verify_str(tok) != AG_TASK_TOKEN_MALFORMED) {
            fail_msg("header accepted: %s", headers[i]);
        }
        free(tok);
    }
    free(payload);
}


static void
token_wrong_iss_and_expiry(void **state)
{
    char                     err[256], *tok;
    json_t                  *c;
    ttask_t                  x;
    ag_task_t                t;

    (void) state;
    root_task(&x);
    tok = mint(&x.t);

    assert_int_equal(ag_task_token_verify(key1, "https://other.example.org",
                                          tok, strlen(tok), NOW, &c, &t, err,
                                          sizeof(err)),
                     AG_TASK_TOKEN_MALFORMED);
    assert_null(c);

    /* no skew: the gateway issued it */
    assert_int_equal(verify(tok, strlen(tok), NOW + 599, NULL, NULL),
                     AG_TASK_TOKEN_OK);
    assert_int_equal(verify(tok, strlen(tok), NOW + 600, NULL, NULL),
                     AG_TASK_TOKEN_EXPIRED);
    assert_int_equal(verify(tok, strlen(tok), NOW + 86400, NULL, NULL),
                     AG_TASK_TOKEN_EXPIRED);
    free(tok);
}


static void
token_segments_and_padding(void **state)
{
    char      *tok, buf[AG_TASK_TOKEN_MAX + 8];
    size_t     len, d1;
    ttask_t    x;

    (void) state;
    root_task(&x);
    tok = mint(&x.t);
    len = strlen(tok);
    d1 = (size_t) (strchr(tok, '.') - tok);

    /* two segments */
    snprintf(buf, sizeof(buf), "%.*s", (int) (strrchr(tok, '.') - tok), tok);
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);

    /* four segments */
    snprintf(buf, sizeof(buf), "%s.%s", tok, "AAAA");
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);

    /* empty segments */
    snprintf(buf, sizeof(buf), "%s.", tok);
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s..%s", (int) d1, tok,
             strrchr(tok, '.') + 1);
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);
    assert_int_equal(verify_str(".."), AG_TASK_TOKEN_MALFORMED);
    assert_int_equal(verify_str("x"), AG_TASK_TOKEN_MALFORMED);
    assert_int_equal(verify(tok, 0, NOW, NULL, NULL), AG_TASK_TOKEN_MALFORMED);

    /* padding on the MAC, the payload, the header */
    snprintf(buf, sizeof(buf), "%s=", tok);
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s=%s", (int) (strrchr(tok, '.') - tok), tok,
             strrchr(tok, '.'));
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s=%s", (int) d1, tok, tok + d1);
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);

    /* standard base64 characters */
    strcpy(buf, tok);
    buf[len - 3] = '+';
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);

    /* a MAC whose last character has bits past the 32nd byte */
    strcpy(buf, tok);
    buf[len - 1] = buf[len - 1] == 'B' ? 'C' : 'B';
    assert_int_equal(verify_str(buf), AG_TASK_TOKEN_MALFORMED);

    /* the length is checked first, over the length given */
    assert_int_equal(verify(tok, len - 1, NOW, NULL, NULL),
                     AG_TASK_TOKEN_MALFORMED);
    memset(buf, 'A', AG_TASK_TOKEN_MAX + 1);
    memcpy(buf, tok, len);
    assert_int_equal(verify(buf, AG_TASK_TOKEN_MAX + 1, NOW, NULL, NULL),
                     AG_TASK_TOKEN_MALFORMED);

    free(tok);
}


static void
token_crafted_ok(void **state)
{
    char      pid[AG_TASK_ID_LEN + 1];
    json_t   *c;

    (void) state;
    assert_int_equal(verify_claims(claims_base()), AG_TASK_TOKEN_OK);

    /* a child with cnf, crafted by hand */
    assert_int_equal(ag_task_id_new(pid), 0);
    c = claims_base();
    json_object_set_new(c, "depth", json_integer(2));
    json_object_set_new(c, "chain", json_string("root>mid>a"));
    json_object_set_new(c, "parent", json_string(pid));
    json_object_set_new(c, "cnf", json_pack("{s:s}", "x5t#S256",
                        "ABEiM0RVZneImaq7zN3u_wARIjNEVWZ3iJmqu8zd7v8"));
    assert_int_equal(verify_claims(c), AG_TASK_TOKEN_OK);
}


static void
token_missing_claims(void **state)
{
    static const char *const  keys[] = {
        "iss", "tid", "sub", "intent", "tools", "chain", "depth", "iat", "exp",
        NULL
    };
    size_t  i;

    (void) state;
    for (i = 0; keys[i] != NULL; i++) {
        if (verify_claims(without(keys[i])) != AG_TASK_TOKEN_MALFORMED) {
            fail_msg("accepted without %s", keys[i]);
        }
    }
}


static void
token_mistyped_claims(void **state)
{
    size_t  i;
    struct {
        const char  *key;
        json_t      *v;
    } bad[] = {
        { "iss", json_integer(1) },
        { "iss", json_string("https://gw.example.org/") },
        { "tid", json_string("short") },
        { "tid", json_string("AAAAAAAAAAAAAAAAAAAAAB") },
        { "tid", json_null() },
        { "sub", json_string("") },
        { "sub", json_string("a b") },
        { "sub", json_integer(7) },
        { "intent", json_string("tri,age") },
        { "intent", json_array() },
        { "tools", json_string("t1") },
        { "tools", json_array() },
        { "tools", json_pack("[i]", 1) },
        { "tools", json_pack("[s, s]", "t1", "t1") },
        { "tools", json_pack("[s]", "t1,t2") },
        { "tools", json_pack("[s]", "") },
        { "chain", json_null() },
        { "chain", json_string("a") },
        { "depth", json_string("0") },
        { "depth", json_real(0.0) },
        { "depth", json_integer(-1) },
        { "depth", json_integer(65) },
        { "iat", json_string("now") },
        { "iat", json_integer(-1) },
        { "exp", json_real(1e12) },
        { "exp", json_true() },
        { "parent", json_string("") },
        { "parent", json_string("AAAAAAAAAAAAAAAAAAAAAA") },   /* at depth 0 */
        { "cnf", json_string(HEXCNF) },
        { "cnf", json_pack("{s:s}", "x5t#S256", "AAAA") },
        { "cnf", json_pack("{s:s, s:i}", "x5t#S256",
                           "ABEiM0RVZneImaq7zN3u_wARIjNEVWZ3iJmqu8zd7v8",
                           "x", 1) },
        { "cnf", json_pack("{s:s}", "x5t",
                           "ABEiM0RVZneImaq7zN3u_wARIjNEVWZ3iJmqu8zd7v8") },
        { "admin", json_true() },
        { "_tools", json_string("t1,t2") },
        { "_cnf", json_string(HEXCNF) },
        { "aud", json_string("x") },
    };

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_non_null(bad[i].v);
        if (verify_claims(with(bad[i].key, bad[i].v))
            != AG_TASK_TOKEN_MALFORMED)
        {
            fail_msg("accepted bad claim %zu (%s)", i, bad[i].key);
        }
    }
}


static void
token_inconsistent_chain(void **state)
{
    char     pid[AG_TASK_ID_LEN + 1];
    json_t  *c;
    size_t   i;
    static const struct {
        int          depth;
        const char  *chain;
        int          parent;
    } bad[] = {
        { 1, "", 1 },              /* a child without a chain */
        { 1, "root>a", 0 },        /* a child without a parent */
        { 1, "a", 1 },             /* one agent for depth 1 */
        { 1, "root>mid>a", 1 },    /* three agents for depth 1 */
        { 1, "root>b", 1 },        /* the last is not sub */
        { 1, "root>xa", 1 },
        { 1, "root>>a", 1 },
        { 1, ">a", 1 },
        { 0, "root>a", 0 },        /* a root task with a chain */
    };

    (void) state;
    assert_int_equal(ag_task_id_new(pid), 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = claims_base();
        json_object_set_new(c, "depth", json_integer(bad[i].depth));
        json_object_set_new(c, "chain", json_string(bad[i].chain));
        if (bad[i].parent) {
            json_object_set_new(c, "parent", json_string(pid));
        }
        if (verify_claims(c) != AG_TASK_TOKEN_MALFORMED) {
            fail_msg("accepted chain %zu: depth %d \"%s\"", i, bad[i].depth,
                     bad[i].chain);
        }
    }
}


static void
token_duplicate_keys(void **state)
{
    char  id[AG_TASK_ID_LEN + 1], payload[512], *tok;

    (void) state;
    assert_int_equal(ag_task_id_new(id), 0);
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"%s\",\"tid\":\"%s\",\"sub\":\"a\",\"sub\":\"b\","
             "\"intent\":\"triage\",\"tools\":[\"t1\"],\"chain\":\"\","
             "\"depth\":0,\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
             ISS, id, NOW, NOW + 60);
    tok = craft(key1, HDR, payload);
    assert_int_equal(verify_str(tok), AG_TASK_TOKEN_MALFORMED);
    free(tok);

    /* not an object, not JSON */
    tok = craft(key1, HDR, "[]");
    assert_int_equal(verify_str(tok), AG_TASK_TOKEN_MALFORMED);
    free(tok);
    tok = craft(key1, HDR, "{\"iss\":");
    assert_int_equal(verify_str(tok), AG_TASK_TOKEN_MALFORMED);
    free(tok);
}


static void
token_mint_refusals(void **state)
{
    char     err[256], *tok, hex[AG_TASK_CNF_LEN + 1];
    int      i;
    ttask_t  x;

    (void) state;
    strcpy(hex, HEXCNF);
    hex[5] = 'g';

    for (i = 0; i < 13; i++) {
        root_task(&x);
        switch (i) {
        case 0: x.t.id = S("short"); break;
        case 1: x.t.tools = S(""); break;
        case 2: x.t.tools = S("t1,,t2"); break;
        case 3: x.t.tools = S("t1,t1"); break;
        case 4: x.t.tools = S("t1,"); break;
        case 5: x.t.cnf = S("abc"); break;
        case 6: x.t.cnf = S(hex); break;
        case 7: x.t.depth = 1; break;              /* no parent, no chain */
        case 8: x.t.expires = NOW; break;
        case 9: x.t.agent = S("bad name"); break;
        case 10: x.t.chain = S("a>a"); break;      /* a chain at depth 0 */
        case 11: child_task(&x); x.t.chain = S("a>c"); break;
        default: x.t.depth = -1; break;
        }
        tok = (char *) &x;
        if (ag_task_token_mint(key1, ISS, &x.t, NOW, &tok, err, sizeof(err))
            != -1)
        {
            fail_msg("minted case %d", i);
        }
        assert_null(tok);
        assert_true(strlen(err) > 0);
    }

    root_task(&x);
    assert_int_equal(ag_task_token_mint(key1, NULL, &x.t, NOW, &tok, err,
                                        sizeof(err)), -1);
    assert_int_equal(ag_task_token_mint(key1, "", &x.t, NOW, &tok, err,
                                        sizeof(err)), -1);
}


/* the longest task there can be still fits a token; one byte more is not a
   task */
static void
token_largest(void **state)
{
    char       tools[AG_TASK_TOOLS_MAX + 2], chain[AG_TASK_CHAIN_MAX + 2];
    char       err[256], *tok;
    size_t     i, n;
    ttask_t    x;
    ag_task_t  t;

    (void) state;
    child_task(&x);

    /* 1024 bytes of tools: 15 names of 63 characters and one of 64 */
    for (n = 0, i = 0; i < 15; i++) {
        memset(tools + n, 'a' + (char) i, 63);
        n += 63;
        tools[n++] = ',';
    }
    memset(tools + n, 'z', AG_TASK_TOOLS_MAX - n);
    tools[AG_TASK_TOOLS_MAX] = '\0';
    x.t.tools = S(tools);

    /* 2048 bytes of chain: 15 agents of 127 characters, one of 126, b */
    for (n = 0, i = 0; i < 15; i++) {
        memset(chain + n, 'q', 127);
        n += 127;
        chain[n++] = '>';
    }
    memset(chain + n, 'r', AG_TASK_CHAIN_MAX - n - 2);
    n = AG_TASK_CHAIN_MAX - 2;
    chain[n++] = '>';
    chain[n++] = 'b';
    chain[n] = '\0';
    x.t.chain = S(chain);
    x.t.depth = 16;
    x.t.cnf = S(HEXCNF);

    tok = mint(&x.t);
    assert_true(strlen(tok) <= AG_TASK_TOKEN_MAX);
    assert_int_equal(verify(tok, strlen(tok), NOW, NULL, &t), AG_TASK_TOKEN_OK);
    assert_int_equal(t.tools.len, AG_TASK_TOOLS_MAX);
    assert_int_equal(t.chain.len, AG_TASK_CHAIN_MAX);
    free(tok);

    tools[AG_TASK_TOOLS_MAX] = 'z';
    tools[AG_TASK_TOOLS_MAX + 1] = '\0';
    x.t.tools = S(tools);
    assert_int_equal(ag_task_token_mint(key1, ISS, &x.t, NOW, &tok, err,
                                        sizeof(err)), -1);

    tools[AG_TASK_TOOLS_MAX] = '\0';
    x.t.tools = S(tools);
    memmove(chain + 1, chain, AG_TASK_CHAIN_MAX + 1);
    chain[0] = 'q';
    x.t.chain = S(chain);
    assert_int_equal(ag_task_token_mint(key1, ISS, &x.t, NOW, &tok, err,
                                        sizeof(err)), -1);
}


/* --- declarations ----------------------------------------------------------------- */

static void
plan_defaults(void **state)
{
    char              buf[AG_TASK_PLAN_BUF];
    json_t           *b;
    ag_task_t         t;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);
    assert_int_equal(plan(p, "a", "{'intent': 'triage', 'ttl': '10m', "
                          "'purpose': 'ticket 7'}", NULL, &t, buf, &e, &b), 0);

    assert_true(ag_task_id_valid(t.id.p, t.id.len));
    assert_int_equal(t.id.p[AG_TASK_ID_LEN], '\0');
    assert_str(t.agent, "a");
    assert_str(t.owner, "team-a");
    assert_str(t.intent, "triage");
    assert_str(t.tools, "t1,t2,t3");         /* all of the intent's */
    assert_int_equal(t.tools.p[t.tools.len], '\0');
    assert_str(t.parent, "");
    assert_str(t.chain, "");
    assert_str(t.cnf, "");
    assert_str(t.purpose, "ticket 7");
    assert_int_equal(t.depth, 0);
    assert_int_equal(t.state, AG_TASK_LIVE);
    assert_int_equal(t.granted, NOW);
    assert_int_equal(t.expires, NOW + 600);
    assert_int_equal(t.ended, 0);
    assert_int_equal(t.calls, 0);
    assert_int_equal(t.bucket_ms, 0);
    json_decref(b);

    /* exactly max_ttl, in any unit; without purpose */
    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '900s'}", NULL,
                          &t, buf, &e, NULL), 0);
    assert_int_equal(t.expires, NOW + 900);
    assert_str(t.owner, "team-b");
    assert_str(t.purpose, "");

    ag_policy_free(p);
}


static void
plan_narrows_and_binds(void **state)
{
    char              buf[AG_TASK_PLAN_BUF];
    json_t           *b;
    ag_task_t         t;
    ag_policy_t      *p;
    ag_task_error_t   e;
    const ag_agent_t *a;

    (void) state;
    p = load(policy_v1);
    assert_int_equal(plan(p, "a", "{'intent': 'triage', 'ttl': '1m', "
                          "'tools': ['t3', 't1']}", NULL, &t, buf, &e, NULL),
                     0);
    assert_str(t.tools, "t3,t1");
    assert_int_equal(t.expires, NOW + 60);

    /* the certificate thumbprint is bound as given; a malformed one is the
       gateway's fault */
    a = ag_policy_agent_by_name(p, "a", 1);
    b = body("{'intent': 'triage', 'ttl': '1m'}");
    assert_int_equal(ag_task_plan(p, a, S(HEXCNF), b, NULL, NOW, &t, buf,
                                  sizeof(buf), &e), 0);
    assert_str(t.cnf, HEXCNF);
    assert_int_equal(ag_task_plan(p, a, S("abc"), b, NULL, NOW, &t, buf,
                                  sizeof(buf), &e), -1);
    assert_int_equal(e.status, 503);
    assert_string_equal(e.code, "gateway_error");
    json_decref(b);

    ag_policy_free(p);
}


static void
plan_bad_bodies(void **state)
{
    char          big[1200], many[6000];
    size_t        i, n;
    ag_policy_t  *p;

    (void) state;
    p = load(policy_v1);

    plan_fails(p, "a", "[]", NULL, 400, "must be a JSON object");
    plan_fails(p, "a", "'triage'", NULL, 400, "must be a JSON object");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', 'extra': 1}", NULL,
               400, "unknown key \"extra\"");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', 'a b\\u00e9': 1}",
               NULL, 400, "unknown key (a task");
    plan_fails(p, "a", "{'ttl': '1m'}", NULL, 400, "intent is required");
    plan_fails(p, "a", "{'intent': 5, 'ttl': '1m'}", NULL, 400,
               "intent is required");
    plan_fails(p, "a", "{'intent': '', 'ttl': '1m'}", NULL, 400,
               "intent is required");
    plan_fails(p, "a", "{'intent': 'triage'}", NULL, 400, "ttl is required");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': 60}", NULL, 400,
               "ttl is required");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '60'}", NULL, 400,
               "ttl is required");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '0s'}", NULL, 400,
               "longer than 0");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '-1m'}", NULL, 400,
               "ttl is required");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1 m'}", NULL, 400,
               "ttl is required");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1M'}", NULL, 400,
               "ttl is required");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', 'tools': []}", NULL,
               400, "tools must be a list of 1 to 512 tool names");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', 'tools': 't1'}",
               NULL, 400, "tools must be a list");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', 'tools': [1]}",
               NULL, 400, "tools/0 is not a tool name");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', "
               "'tools': ['t1', 't1,t2']}", NULL, 400,
               "tools/1 is not a tool name");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', "
               "'tools': ['t1', 't2', 't1']}", NULL, 400,
               "tool t1 is listed twice");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', 'purpose': 7}",
               NULL, 400, "purpose must be a string of at most 512 bytes");

    /* 512 bytes of purpose are fine, 513 are not */
    for (n = 0; n < 2; n++) {
        snprintf(big, sizeof(big), "{'intent': 'triage', 'ttl': '1m', "
                 "'purpose': '%0*d'}", (int) (512 + n), 0);
        if (n == 0) {
            char              buf[AG_TASK_PLAN_BUF];
            ag_task_t         t;
            ag_task_error_t   e;

            assert_int_equal(plan(p, "a", big, NULL, &t, buf, &e, NULL), 0);
        } else {
            plan_fails(p, "a", big, NULL, 400, "purpose must be");
        }
    }

    /* more names than a task can hold */
    n = (size_t) snprintf(many, sizeof(many), "{'intent': 'triage', "
                          "'ttl': '1m', 'tools': [");
    for (i = 0; i < 513; i++) {
        n += (size_t) snprintf(many + n, sizeof(many) - n, "%s'x%zu'",
                               i ? "," : "", i);
    }
    snprintf(many + n, sizeof(many) - n, "]}");
    plan_fails(p, "a", many, NULL, 400, "tools must be a list");

    /* the body is read before the policy is asked */
    plan_fails(p, "z", "{'intent': 'nope', 'ttl': 'x'}", NULL, 400,
               "ttl is required");

    ag_policy_free(p);
}


static void
plan_policy_refusals(void **state)
{
    char              buf[AG_TASK_PLAN_BUF];
    ag_task_t         t;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);

    assert_int_equal(plan(p, "a", "{'intent': 'triage', 'ttl': '20m'}", NULL,
                          &t, buf, &e, NULL), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "bad_request");
    assert_string_equal(e.message, "ttl 20m is over the intent's max_ttl 15m");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '901s'}", NULL, 400,
               "ttl 901s is over the intent's max_ttl 15m");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '2d'}", NULL, 400,
               "ttl 2d is over");

    assert_int_equal(plan(p, "a", "{'intent': 'nope', 'ttl': '1m'}", NULL,
                          &t, buf, &e, NULL), -1);
    assert_int_equal(e.status, 403);
    assert_string_equal(e.code, "denied");
    assert_string_equal(e.message, "intent nope is not in the policy");
    plan_fails(p, "a", "{'intent': 'no pe', 'ttl': '1m'}", NULL, 403,
               "the intent is not in the policy");

    /* an agent the intent does not list learns nothing of its max_ttl */
    plan_fails(p, "z", "{'intent': 'triage', 'ttl': '1m'}", NULL, 403,
               "agent z may not declare intent triage");
    plan_fails(p, "z", "{'intent': 'triage', 'ttl': '20m'}", NULL, 403,
               "agent z may not declare intent triage");

    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', "
               "'tools': ['t1', 'other']}", NULL, 403,
               "tool other is not in intent triage");
    plan_fails(p, "a", "{'intent': 'triage', 'ttl': '1m', "
               "'tools': ['nosuch']}", NULL, 403,
               "tool nosuch is not in intent triage");

    ag_policy_free(p);
}


static void
plan_buffer(void **state)
{
    char               buf[AG_TASK_PLAN_BUF];
    json_t            *b;
    size_t             need;
    ag_task_t          t;
    ag_policy_t       *p;
    ag_task_error_t    e;
    const ag_agent_t  *a;

    (void) state;
    p = load(policy_v1);
    a = ag_policy_agent_by_name(p, "a", 1);
    b = body("{'intent': 'triage', 'ttl': '1m'}");

    need = AG_TASK_ID_LEN + 1 + sizeof("t1,t2,t3");
    assert_int_equal(ag_task_plan(p, a, S(""), b, NULL, NOW, &t, buf, need, &e),
                     0);
    assert_str(t.tools, "t1,t2,t3");

    assert_int_equal(ag_task_plan(p, a, S(""), b, NULL, NOW, &t, buf, need - 1,
                                  &e), -1);
    assert_int_equal(e.status, 503);
    assert_string_equal(e.code, "gateway_error");
    assert_int_equal(ag_task_plan(p, a, S(""), b, NULL, NOW, &t, buf, 10, &e),
                     -1);
    assert_int_equal(e.status, 503);

    json_decref(b);
    ag_policy_free(p);
}


static void
plan_child(void **state)
{
    char              pbuf[AG_TASK_PLAN_BUF], buf[AG_TASK_PLAN_BUF];
    ag_task_t         parent, t;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);
    assert_int_equal(plan(p, "a", "{'intent': 'triage', 'ttl': '5m', "
                          "'tools': ['t2', 't1']}", NULL, &parent, pbuf, &e,
                          NULL), 0);

    /* narrowing */
    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '1m', "
                          "'tools': ['t2']}", &parent, &t, buf, &e, NULL), 0);
    assert_str(t.tools, "t2");
    assert_str(t.agent, "b");
    assert_str(t.owner, "team-b");
    assert_ptr_equal(t.parent.p, parent.id.p);
    assert_int_equal(t.parent.len, AG_TASK_ID_LEN);
    assert_int_equal(t.depth, 1);
    assert_str(t.chain, "a>b");
    assert_int_equal(t.expires, NOW + 60);
    assert_false(str_is(t.id, parent.id.p));

    /* by default the parent's tools, in the intent's order */
    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '1m'}",
                          &parent, &t, buf, &e, NULL), 0);
    assert_str(t.tools, "t1,t2");

    /* never outliving the parent */
    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '10m'}",
                          &parent, &t, buf, &e, NULL), 0);
    assert_int_equal(t.expires, parent.expires);
    assert_int_equal(t.expires, NOW + 300);

    /* widening, another intent, an expired parent */
    plan_fails(p, "b", "{'intent': 'triage', 'ttl': '1m', 'tools': ['t3']}",
               &parent, 403, "a delegated task cannot widen its tools: t3 is "
               "not in the parent task");
    plan_fails(p, "b", "{'intent': 'triage', 'ttl': '1m', "
               "'tools': ['t1', 't3']}", &parent, 403,
               "a delegated task cannot widen its tools");
    plan_fails(p, "b", "{'intent': 'other', 'ttl': '1m'}", &parent, 403,
               "a delegated task must keep its parent's intent");
    parent.expires = NOW;
    plan_fails(p, "b", "{'intent': 'triage', 'ttl': '1m'}", &parent, 403,
               "the parent task has expired");

    /* the child's own ttl limit still holds */
    parent.expires = NOW + 300;
    plan_fails(p, "b", "{'intent': 'triage', 'ttl': '16m'}", &parent, 400,
               "ttl 16m is over the intent's max_ttl 15m");
    plan_fails(p, "z", "{'intent': 'triage', 'ttl': '1m'}", &parent, 403,
               "agent z may not declare intent triage");

    ag_policy_free(p);
}


static void
plan_child_policy_changed(void **state)
{
    char              buf[AG_TASK_PLAN_BUF], chain[AG_TASK_CHAIN_MAX];
    ttask_t           x;
    ag_task_t         t;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);

    /* a parent whose tools the intent no longer has */
    root_task(&x);
    x.t.tools = S("t9,t8");
    plan_fails(p, "b", "{'intent': 'triage', 'ttl': '1m'}", &x.t, 403,
               "no tool of the parent task is in intent triage");
    x.t.tools = S("t9,t2");
    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '1m'}", &x.t,
                          &t, buf, &e, NULL), 0);
    assert_str(t.tools, "t2");

    /* a chain that would grow too long */
    child_task(&x);
    memset(chain, 'q', sizeof(chain) - 1);
    chain[sizeof(chain) - 3] = '>';
    chain[sizeof(chain) - 2] = 'b';
    chain[sizeof(chain) - 1] = '\0';
    x.t.chain = S(chain);
    plan_fails(p, "c", "{'intent': 'triage', 'ttl': '1m'}", &x.t, 400,
               "the delegation chain would be over 2048 bytes");

    ag_policy_free(p);
}


static void
plan_depth_and_chain(void **state)
{
    char              b0[AG_TASK_PLAN_BUF], b1[AG_TASK_PLAN_BUF];
    char              b2[AG_TASK_PLAN_BUF], b3[AG_TASK_PLAN_BUF];
    ag_task_t         t0, t1, t2, t3;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);

    /* triage: the default max_depth 3 */
    assert_int_equal(plan(p, "a", "{'intent': 'triage', 'ttl': '10m'}", NULL,
                          &t0, b0, &e, NULL), 0);
    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '10m'}", &t0,
                          &t1, b1, &e, NULL), 0);
    assert_int_equal(plan(p, "c", "{'intent': 'triage', 'ttl': '10m'}", &t1,
                          &t2, b2, &e, NULL), 0);
    assert_int_equal(plan(p, "a", "{'intent': 'triage', 'ttl': '10m'}", &t2,
                          &t3, b3, &e, NULL), 0);
    assert_str(t0.chain, "");
    assert_str(t1.chain, "a>b");
    assert_str(t2.chain, "a>b>c");
    assert_str(t3.chain, "a>b>c>a");
    assert_int_equal(t2.depth, 2);
    assert_int_equal(t3.depth, 3);
    assert_ptr_equal(t2.parent.p, t1.id.p);
    plan_fails(p, "b", "{'intent': 'triage', 'ttl': '10m'}", &t3, 403,
               "delegation depth 4 is over the intent's max_depth 3");

    /* shallow: max_depth 1; flat: no delegation at all */
    assert_int_equal(plan(p, "a", "{'intent': 'shallow', 'ttl': '10m'}", NULL,
                          &t0, b0, &e, NULL), 0);
    assert_int_equal(plan(p, "b", "{'intent': 'shallow', 'ttl': '10m'}", &t0,
                          &t1, b1, &e, NULL), 0);
    plan_fails(p, "c", "{'intent': 'shallow', 'ttl': '10m'}", &t1, 403,
               "delegation depth 2 is over the intent's max_depth 1");

    assert_int_equal(plan(p, "a", "{'intent': 'flat', 'ttl': '10m'}", NULL,
                          &t0, b0, &e, NULL), 0);
    plan_fails(p, "b", "{'intent': 'flat', 'ttl': '10m'}", &t0, 403,
               "delegation depth 1 is over the intent's max_depth 0");

    ag_policy_free(p);
}


/* the way the gateway uses it: declare, mint, verify, delegate on the
   verified token */
static void
plan_mint_verify_delegate(void **state)
{
    char               b0[AG_TASK_PLAN_BUF], b1[AG_TASK_PLAN_BUF];
    char               err[256], *tok0, *tok1, *tok2;
    json_t            *body0, *c0, *c1, *c2;
    ag_task_t          t0, v0, t1, v1, t2, v2;
    ag_policy_t       *p;
    ag_task_error_t    e;
    const ag_agent_t  *a;

    (void) state;
    p = load(policy_v1);
    a = ag_policy_agent_by_name(p, "a", 1);
    body0 = body("{'intent': 'triage', 'ttl': '10m', 'tools': ['t1', 't2']}");
    assert_int_equal(ag_task_plan(p, a, S(HEXCNF), body0, NULL, NOW, &t0, b0,
                                  sizeof(b0), &e), 0);
    assert_int_equal(ag_task_token_mint(key1, ISS, &t0, NOW, &tok0, err,
                                        sizeof(err)), 0);
    json_decref(body0);

    assert_int_equal(verify(tok0, strlen(tok0), NOW + 5, &c0, &v0),
                     AG_TASK_TOKEN_OK);
    assert_str(v0.id, t0.id.p);
    assert_str(v0.cnf, HEXCNF);
    assert_str(v0.tools, "t1,t2");

    assert_int_equal(plan(p, "b", "{'intent': 'triage', 'ttl': '15m'}", &v0,
                          &t1, b1, &e, NULL), 0);
    assert_int_equal(ag_task_token_mint(key1, ISS, &t1, NOW, &tok1, err,
                                        sizeof(err)), 0);
    assert_int_equal(verify(tok1, strlen(tok1), NOW + 5, &c1, &v1),
                     AG_TASK_TOKEN_OK);
    assert_str(v1.parent, t0.id.p);
    assert_str(v1.chain, "a>b");
    assert_int_equal(v1.depth, 1);
    assert_int_equal(v1.expires, NOW + 600);
    assert_str(v1.cnf, "");

    assert_int_equal(plan(p, "c", "{'intent': 'triage', 'ttl': '1m', "
                          "'tools': ['t2']}", &v1, &t2, b0, &e, NULL), 0);
    assert_int_equal(ag_task_token_mint(key1, ISS, &t2, NOW, &tok2, err,
                                        sizeof(err)), 0);
    assert_int_equal(verify(tok2, strlen(tok2), NOW + 5, &c2, &v2),
                     AG_TASK_TOKEN_OK);
    assert_str(v2.chain, "a>b>c");
    assert_str(v2.tools, "t2");
    assert_str(v2.parent, v1.id.p);

    json_decref(c0);
    json_decref(c1);
    json_decref(c2);
    free(tok0);
    free(tok1);
    free(tok2);
    ag_policy_free(p);
}


/* --- renewals ------------------------------------------------------------------- */

static int
renew(const ag_policy_t *p, const ag_task_t *t, const ag_task_t *parent,
    int64_t ttl, int64_t now, int64_t *exp, ag_task_error_t *e)
{
    memset(e, 0, sizeof(*e));
    *exp = -1;
    return ag_task_plan_renew(p, t, parent, ttl, now, exp, e);
}


static void
renew_caps(void **state)
{
    int64_t           exp;
    ttask_t           x, par;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);
    root_task(&x);          /* triage: max_ttl 15m, max_lifetime 60m */

    assert_int_equal(renew(p, &x.t, NULL, 0, NOW + 300, &exp, &e), 0);
    assert_int_equal(exp, NOW + 300 + 900);
    assert_int_equal(renew(p, &x.t, NULL, 420, NOW + 300, &exp, &e), 0);
    assert_int_equal(exp, NOW + 720);

    /* never shorter than it is */
    assert_int_equal(renew(p, &x.t, NULL, 60, NOW + 300, &exp, &e), 0);
    assert_int_equal(exp, NOW + 600);

    /* capped by the first grant + max_lifetime, then refused */
    x.t.expires = NOW + 3500;
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW + 3400, &exp, &e), 0);
    assert_int_equal(exp, NOW + 3600);
    x.t.expires = NOW + 3600;
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW + 3599, &exp, &e), 0);
    assert_int_equal(exp, NOW + 3600);
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW + 3600, &exp, &e), -1);
    assert_int_equal(e.status, 403);
    assert_string_equal(e.code, "denied");
    assert_string_equal(e.message, "the task reached its max_lifetime");

    /* an explicit max_lifetime: shallow's 2h */
    root_task(&x);
    x.t.intent = S("shallow");
    x.t.tools = S("t1");
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW + 7000, &exp, &e), 0);
    assert_int_equal(exp, NOW + 7200);

    /* capped by the parent */
    child_task(&x);
    root_task(&par);
    par.t.expires = NOW + 700;
    assert_int_equal(renew(p, &x.t, &par.t, 0, NOW + 300, &exp, &e), 0);
    assert_int_equal(exp, NOW + 700);
    par.t.expires = NOW + 300;
    assert_int_equal(renew(p, &x.t, &par.t, 0, NOW + 300, &exp, &e), -1);
    assert_int_equal(e.status, 403);
    assert_non_null(strstr(e.message, "parent task has expired"));

    ag_policy_free(p);
}


static void
renew_ttl(void **state)
{
    int64_t           exp;
    ttask_t           x;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v1);
    root_task(&x);

    assert_int_equal(renew(p, &x.t, NULL, 900, NOW, &exp, &e), 0);
    assert_int_equal(exp, NOW + 900);
    assert_int_equal(renew(p, &x.t, NULL, 1200, NOW, &exp, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "bad_request");
    assert_string_equal(e.message, "ttl 20m is over the intent's max_ttl 15m");
    assert_int_equal(renew(p, &x.t, NULL, -1, NOW, &exp, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(exp, -1);

    /* huge values saturate instead of wrapping */
    x.t.granted = INT64_MAX - 10;
    x.t.expires = INT64_MAX - 5;
    assert_int_equal(renew(p, &x.t, NULL, 0, INT64_MAX - 20, &exp, &e), 0);
    assert_int_equal(exp, INT64_MAX);

    ag_policy_free(p);
}


static void
renew_after_reload(void **state)
{
    int64_t           exp;
    ttask_t           x;
    ag_policy_t      *p;
    ag_task_error_t   e;

    (void) state;
    p = load(policy_v2);

    root_task(&x);                      /* a, triage, t1 and t2 */
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW, &exp, &e), 0);
    assert_int_equal(exp, NOW + 900);

    x.t.intent = S("shallow");
    x.t.tools = S("t1");
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW, &exp, &e), -1);
    assert_int_equal(e.status, 403);
    assert_string_equal(e.message, "the task cannot be renewed: intent "
                        "shallow is not in the policy");

    root_task(&x);
    x.t.agent = S("b");
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW, &exp, &e), -1);
    assert_int_equal(e.status, 403);
    assert_string_equal(e.message, "the task cannot be renewed: agent b may "
                        "no longer declare intent triage");

    root_task(&x);
    x.t.tools = S("t1,t3");
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW, &exp, &e), -1);
    assert_int_equal(e.status, 403);
    assert_string_equal(e.code, "denied");
    assert_string_equal(e.message, "the task cannot be renewed: tool t3 is no "
                        "longer in intent triage");
    assert_int_equal(exp, -1);

    ag_policy_free(p);

    /* a depth the intent no longer allows */
    p = load(policy_v1);
    child_task(&x);
    x.t.intent = S("flat");
    x.t.tools = S("t1");
    assert_int_equal(renew(p, &x.t, NULL, 0, NOW, &exp, &e), -1);
    assert_non_null(strstr(e.message, "depth 1 is over the intent's "
                           "max_depth 0"));
    ag_policy_free(p);
}


static void
has_tool(void **state)
{
    ag_str_t  l = S("t1,t2,tool3");

    (void) state;
    assert_true(ag_task_has_tool(l, "t1", 2));
    assert_true(ag_task_has_tool(l, "t2", 2));
    assert_true(ag_task_has_tool(l, "tool3", 5));
    assert_true(ag_task_has_tool(l, "t1,t2", 2));        /* length given */
    assert_false(ag_task_has_tool(l, "t", 1));
    assert_false(ag_task_has_tool(l, "tool", 4));
    assert_false(ag_task_has_tool(l, "tool33", 6));
    assert_false(ag_task_has_tool(l, "t1,t2", 5));
    assert_false(ag_task_has_tool(l, ",", 1));
    assert_false(ag_task_has_tool(l, "", 0));
    assert_false(ag_task_has_tool(S(""), "", 0));
    assert_false(ag_task_has_tool(S(""), "t1", 2));
    assert_true(ag_task_has_tool(S("t1"), "t1", 2));
}


/* --- budgets -------------------------------------------------------------------- */

static ag_intent_t
intent_budget(int64_t calls, int64_t n, int64_t per)
{
    ag_intent_t  in;

    memset(&in, 0, sizeof(in));
    in.name = "b";
    in.budget_calls = calls;
    in.budget_rate_n = n;
    in.budget_rate_per = per;
    return in;
}

#define T0  (NOW * 1000)


static void
budget_calls(void **state)
{
    int64_t      ra;
    ttask_t      x;
    ag_task_t    before;
    ag_intent_t  in = intent_budget(3, 0, 0);

    (void) state;
    root_task(&x);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 999, &ra), 0);
    assert_int_equal(x.t.calls, 3);

    /* retry when the task is over: expires NOW + 600 */
    before = x.t;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 100500, &ra), -1);
    assert_int_equal(ra, 500);
    assert_memory_equal(&before, &x.t, sizeof(before));
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 599999, &ra), -1);
    assert_int_equal(ra, 1);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 900000, &ra), -1);
    assert_int_equal(ra, 1);

    /* no budget at all: every call passes and is counted */
    in = intent_budget(0, 0, 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(x.t.calls, 4);
    assert_int_equal(x.t.bucket_ms, 0);
}


static void
budget_rate_bucket(void **state)
{
    int64_t      ra;
    ttask_t      x;
    ag_intent_t  in = intent_budget(0, 2, 1);       /* 2/s */

    (void) state;
    root_task(&x);

    /* a new task starts with a full bucket: 2 calls at once */
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(x.t.bucket_mtok, 1000);
    assert_int_equal(x.t.bucket_ms, T0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), -1);
    assert_int_equal(ra, 1);
    assert_int_equal(x.t.calls, 2);

    /* one token every 500 ms */
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 499, &ra), -1);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 500, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 500, &ra), -1);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 1000, &ra), 0);

    /* a long pause fills the bucket, never more */
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 60000, &ra), 0);
    assert_int_equal(x.t.bucket_mtok, 1000);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 60000, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 60000, &ra), -1);
    assert_int_equal(x.t.calls, 6);

    /* calls are counted before the rate is asked */
    in = intent_budget(6, 2, 1);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 90000, &ra), -1);
    assert_int_equal(ra, 600 - 90);
}


/* retry_after is exact: a retry after it passes, one a second earlier not */
static void
budget_retry_exact(void **state)
{
    int64_t      ra, ra2, now;
    ttask_t      x, y;
    ag_intent_t  in = intent_budget(0, 1, 60);      /* 1/m */

    (void) state;
    root_task(&x);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);

    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 1, &ra), -1);
    assert_int_equal(ra, 60);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 1000, &ra), -1);
    assert_int_equal(ra, 59);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 59999, &ra), -1);
    assert_int_equal(ra, 1);

    for (now = T0 + 1; now < T0 + 60000; now += 977) {
        y = x;
        assert_int_equal(ag_task_budget_spend(&in, &y.t, now, &ra), -1);
        assert_true(ra >= 1);
        y = x;
        if (ag_task_budget_spend(&in, &y.t, now + ra * 1000, &ra2) != 0) {
            fail_msg("retry after %" PRId64 " s at +%" PRId64 " ms failed",
                     ra, now - T0);
        }
        if (ra > 1) {
            y = x;
            assert_int_equal(ag_task_budget_spend(&in, &y.t,
                                                  now + (ra - 1) * 1000, &ra2),
                             -1);
        }
    }

    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 60000, &ra), 0);

    /* 3/s: a token every 333.33 ms */
    in = intent_budget(0, 3, 1);
    root_task(&x);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 333, &ra), -1);
    assert_int_equal(ra, 1);
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 334, &ra), 0);
}


/* a slow rate still refills when calls come often: time that did not make a
   whole milli-token is kept for the next call */
static void
budget_slow_rate(void **state)
{
    int64_t      ra, now, step, ok_at;
    size_t       k;
    ttask_t      x;
    ag_intent_t  in = intent_budget(0, 1, 3600);    /* 1/h */
    static const int64_t  steps[] = { 1000, 997, 3599 };

    (void) state;
    for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        step = steps[k];
        root_task(&x);
        assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);

        ok_at = 0;
        for (now = T0 + step; now <= T0 + 3600000 + step; now += step) {
            if (ag_task_budget_spend(&in, &x.t, now, &ra) == 0) {
                ok_at = now;
                break;
            }
            /* the promise never moves: the hour after the last call */
            assert_int_equal(ra, (T0 + 3600000 - now + 999) / 1000);
        }
        if (ok_at < T0 + 3600000 || ok_at >= T0 + 3600000 + step) {
            fail_msg("step %" PRId64 ": refilled at +%" PRId64 " ms", step,
                     ok_at - T0);
        }
    }
}


static void
budget_clamps(void **state)
{
    int64_t      ra;
    ttask_t      x;
    ag_intent_t  in = intent_budget(0, 999999999, 3600);

    (void) state;

    /* huge gaps fill the bucket without overflow (UBSan watches) */
    root_task(&x);
    x.t.bucket_ms = 1;
    x.t.bucket_mtok = 0;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, INT64_MAX - 5, &ra), 0);
    assert_int_equal(x.t.bucket_mtok, INT64_C(999999999) * 1000 - 1000);
    assert_int_equal(x.t.bucket_ms, INT64_MAX - 5);

    in = intent_budget(0, 2, 1);
    root_task(&x);
    x.t.bucket_ms = T0;
    x.t.bucket_mtok = 500;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 + 3599000, &ra), 0);
    assert_int_equal(x.t.bucket_mtok, 1000);

    /* the clock going back grants nothing, and refilling resumes from then */
    root_task(&x);
    x.t.bucket_ms = T0;
    x.t.bucket_mtok = 0;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 - 10000, &ra), -1);
    assert_int_equal(ra, 1);
    x.t.bucket_ms = T0 - 10000;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0 - 9500, &ra), 0);

    /* a bucket from before a policy change is clamped to the new size */
    root_task(&x);
    x.t.bucket_ms = T0;
    x.t.bucket_mtok = 1000000;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), 0);
    assert_int_equal(x.t.bucket_mtok, 1000);
    x.t.bucket_mtok = -5;
    assert_int_equal(ag_task_budget_spend(&in, &x.t, T0, &ra), -1);
}


/* --- JSON ------------------------------------------------------------------------- */

static void
json_shape(void **state)
{
    json_t      *o, *tools;
    ttask_t      x;

    (void) state;
    root_task(&x);
    x.t.purpose = S("ticket 7");
    x.t.calls = 4;

    o = ag_task_to_json(&x.t, NOW);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 14);
    assert_string_equal(json_string_value(json_object_get(o, "task")), x.id);
    assert_string_equal(json_string_value(json_object_get(o, "agent")), "a");
    assert_string_equal(json_string_value(json_object_get(o, "owner")),
                        "team-a");
    assert_string_equal(json_string_value(json_object_get(o, "intent")),
                        "triage");
    tools = json_object_get(o, "tools");
    assert_int_equal(json_array_size(tools), 2);
    assert_string_equal(json_string_value(json_array_get(tools, 0)), "t1");
    assert_string_equal(json_string_value(json_array_get(tools, 1)), "t2");
    assert_true(json_is_null(json_object_get(o, "parent")));
    assert_true(json_is_null(json_object_get(o, "chain")));
    assert_int_equal(json_integer_value(json_object_get(o, "depth")), 0);
    assert_string_equal(json_string_value(json_object_get(o, "purpose")),
                        "ticket 7");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "live");
    assert_string_equal(json_string_value(json_object_get(o, "granted_at")),
                        "2026-11-23T10:00:00Z");
    assert_string_equal(json_string_value(json_object_get(o, "expires_at")),
                        "2026-11-23T10:10:00Z");
    assert_true(json_is_null(json_object_get(o, "ended_at")));
    assert_int_equal(json_integer_value(json_object_get(o, "calls")), 4);
    json_decref(o);

    /* past its expiry a live task shows as expired */
    o = ag_task_to_json(&x.t, NOW + 600);
    assert_string_equal(json_string_value(json_object_get(o, "state")),
                        "expired");
    json_decref(o);

    child_task(&x);
    x.t.state = AG_TASK_ENDED;
    x.t.ended = NOW + 5;
    o = ag_task_to_json(&x.t, NOW + 9000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "ended");
    assert_string_equal(json_string_value(json_object_get(o, "ended_at")),
                        "2026-11-23T10:00:05Z");
    assert_string_equal(json_string_value(json_object_get(o, "parent")), x.pid);
    assert_string_equal(json_string_value(json_object_get(o, "chain")), "a>b");
    assert_int_equal(json_integer_value(json_object_get(o, "depth")), 1);
    assert_true(json_is_null(json_object_get(o, "purpose")));
    json_decref(o);

    x.t.state = AG_TASK_REVOKED;
    o = ag_task_to_json(&x.t, NOW);
    assert_string_equal(json_string_value(json_object_get(o, "state")),
                        "revoked");
    json_decref(o);
}


static void
json_names(void **state)
{
    json_t  *a;

    (void) state;
    assert_string_equal(ag_task_state_name(AG_TASK_LIVE), "live");
    assert_string_equal(ag_task_state_name(AG_TASK_ENDED), "ended");
    assert_string_equal(ag_task_state_name(AG_TASK_REVOKED), "revoked");
    assert_string_equal(ag_task_state_name(AG_TASK_EXPIRED), "expired");

    a = ag_task_tools_json(S("t1,files,x"));
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_array_get(a, 1)), "files");
    json_decref(a);
    a = ag_task_tools_json(S(""));
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);
}


static void
time_rfc3339(void **state)
{
    char  buf[32];

    (void) state;
    ag_time_rfc3339(NOW, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-23T10:00:00Z");
    ag_time_rfc3339(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    ag_time_rfc3339(951825599, buf, sizeof(buf));
    assert_string_equal(buf, "2000-02-29T11:59:59Z");
    ag_time_rfc3339(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    ag_time_rfc3339(INT64_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "9999-12-31T23:59:59Z");

    /* exactly 21 bytes are enough; fewer give an empty string */
    ag_time_rfc3339(NOW, buf, 21);
    assert_string_equal(buf, "2026-11-23T10:00:00Z");
    ag_time_rfc3339(NOW, buf, 20);
    assert_string_equal(buf, "");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_format),
        cmocka_unit_test(id_unique),
        cmocka_unit_test(id_valid_refusals),
        cmocka_unit_test(key_ed25519),
        cmocka_unit_test(key_known_seed),
        cmocka_unit_test(key_p256),
        cmocka_unit_test(key_refusals),
        cmocka_unit_test(token_round_trip_root),
        cmocka_unit_test(token_round_trip_child_cnf),
        cmocka_unit_test(token_form_exact),
        cmocka_unit_test(token_bad_mac),
        cmocka_unit_test(token_header_refusals),
        cmocka_unit_test(token_wrong_iss_and_expiry),
        cmocka_unit_test(token_segments_and_padding),
        cmocka_unit_test(token_crafted_ok),
        cmocka_unit_test(token_missing_claims),
        cmocka_unit_test(token_mistyped_claims),
        cmocka_unit_test(token_inconsistent_chain),
        cmocka_unit_test(token_duplicate_keys),
        cmocka_unit_test(token_mint_refusals),
        cmocka_unit_test(token_largest),
        cmocka_unit_test(plan_defaults),
        cmocka_unit_test(plan_narrows_and_binds),
        cmocka_unit_test(plan_bad_bodies),
        cmocka_unit_test(plan_policy_refusals),
        cmocka_unit_test(plan_buffer),
        cmocka_unit_test(plan_child),
        cmocka_unit_test(plan_child_policy_changed),
        cmocka_unit_test(plan_depth_and_chain),
        cmocka_unit_test(plan_mint_verify_delegate),
        cmocka_unit_test(renew_caps),
        cmocka_unit_test(renew_ttl),
        cmocka_unit_test(renew_after_reload),
        cmocka_unit_test(has_tool),
        cmocka_unit_test(budget_calls),
        cmocka_unit_test(budget_rate_bucket),
        cmocka_unit_test(budget_retry_exact),
        cmocka_unit_test(budget_slow_rate),
        cmocka_unit_test(budget_clamps),
        cmocka_unit_test(json_shape),
        cmocka_unit_test(json_names),
        cmocka_unit_test(time_rfc3339),
    };

    return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
