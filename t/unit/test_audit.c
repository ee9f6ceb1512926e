/*
 * The audit chain: JSON strings, timestamps, sealing and the line form
 * (against HMAC-SHA256 vectors from RFC 4231 and from openssl dgst), the end
 * of a file after a crash, JWS checkpoints against a JWKS, and the verifier
 * on good chains and on every kind of tampering: an edited, deleted,
 * swapped or inserted record, a cut file with and without its restart
 * record, a forged restart, and a chain rewritten with the right HMAC key
 * but without the gateway's signing key.
 */

#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "unit.h"
#include "ag_audit.h"
#include "ag_json.h"
#include "ag_jwt.h"


#define TS0      INT64_C(1795428000000000)      /* 2026-11-23T10:00:00Z */
#define ZERO64   "0000000000000000000000000000000000000000000000000000000000000000"
#define ISS      "https://gw.example.org"

static const unsigned char  key1[32] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
};
static const unsigned char  key2[32] = { 9 };


/* --- helpers ------------------------------------------------------------------ */

static ag_str_t
S(const char *s)
{
    ag_str_t  r;

    r.p = s;
    r.len = s ? strlen(s) : 0;
    return r;
}


static ag_audit_key_t *
key_new(const unsigned char *k, size_t len)
{
    char             err[256];
    ag_audit_key_t  *ak;

    ak = ag_audit_key_new(k, len, err, sizeof(err));
    if (ak == NULL) {
        fail_msg("%s", err);
    }
    return ak;
}


static char *
json_str(const char *s, size_t len)
{
    char      *r;
    ag_buf_t   b;

    memset(&b, 0, sizeof(b));
    ag_buf_json_str(&b, s, len);
    ag_buf_add(&b, "", 1);
    assert_false(b.failed);
    r = strdup(b.p);
    ag_buf_free(&b);
    return r;
}


/* An audit file being written: its text and the head of its chain. */
typedef struct {
    const ag_audit_key_t  *key;
    ag_buf_t               text;
    uint64_t               seq;
    char                   hash[AG_AUDIT_HEX];
} chain_t;


static void
chain_init(chain_t *c, const ag_audit_key_t *key)
{
    memset(c, 0, sizeof(*c));
    c->key = key;
    memcpy(c->hash, ZERO64, AG_AUDIT_HEX);
}


static int64_t
ts_of(uint64_t seq)
{
    return TS0 + (int64_t) seq * 1234;
}


static void
chain_add_body(chain_t *c, const char *body, size_t len)
{
    c->seq++;
    assert_int_equal(ag_audit_seal(c->key, c->seq, ts_of(c->seq), body, len,
                                   c->hash, &c->text, c->hash), 0);
}


/* a call record as the gateway writes one, varied by i */
static void
chain_add_call(chain_t *c, int i)
{
    char            rid[32], path[64];
    ag_buf_t        b;
    ag_audit_rec_t  r;
    const char     *tags[] = { "pci", "finance" };
    ag_str_t        stripped[] = { { "x-api-key", 9 } };

    snprintf(rid, sizeof(rid), "req-%06d", i);
    snprintf(path, sizeof(path), "/v1/refunds/%d", i);

    memset(&r, 0, sizeof(r));
    r.event = (i % 3 == 2) ? "result" : "call";
    r.request_id = S(rid);
    r.agent = S("support-bot");
    r.owner = S("team-support");
    r.task = S("t-0123456789abcdef");
    r.intent = S("refund");
    r.tool = S("payments");
    r.method = S("POST");
    r.host = S("pay.example");
    r.path = S(path);
    r.decision = S(i % 5 == 0 ? "deny" : "allow");
    r.rule = S("refunds-small");
    r.reason = S("amount under 100 \"EUR\"");
    r.tags = tags;
    r.ntags = 2;
    r.stripped = stripped;
    r.nstripped = 1;
    r.status = (i % 3 == 2) ? 200 : 0;
    r.latency_us = (i % 3 == 2) ? 1000 + i : -1;

    memset(&b, 0, sizeof(b));
    ag_audit_body(&r, &b);
    assert_false(b.failed);
    chain_add_body(c, b.p, b.len);
    ag_buf_free(&b);
}


/* a checkpoint for the record before it */
static void
chain_add_checkpoint(chain_t *c, EVP_PKEY *sk, const char *kid)
{
    char      err[256];
    ag_buf_t  b;

    memset(&b, 0, sizeof(b));
    assert_int_equal(ag_audit_checkpoint_body(sk, kid, ISS, c->seq, c->hash,
                                              1795428000, &b, err,
                                              sizeof(err)), 0);
    chain_add_body(c, b.p, b.len);
    ag_buf_free(&b);
}


static void
chain_free(chain_t *c)
{
    ag_buf_free(&c->text);
}


/* The lines of a text, without their '\n', each malloc'd. */
typedef struct {
    char    **v;
    size_t    n;
} lines_t;


static void
lines_split(lines_t *l, const char *text, size_t len)
{
    const char  *p, *e, *last;

    l->v = calloc(len + 1, sizeof(char *));
    l->n = 0;
    assert_non_null(l->v);

    for (p = text, last = text + len; p < last; p = e + 1) {
        e = memchr(p, '\n', (size_t) (last - p));
        if (e == NULL) {
            e = last;
        }
        l->v[l->n++] = strndup(p, (size_t) (e - p));
    }
}


static void
lines_join(const lines_t *l, ag_buf_t *out)
{
    size_t  i;

    ag_buf_reset(out);
    for (i = 0; i < l->n; i++) {
        ag_buf_str(out, l->v[i]);
        ag_buf_add(out, "\n", 1);
    }
    assert_false(out->failed);
}


static void
lines_free(lines_t *l)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
}


/* Feed texts (one per file) to one verifier, line by line as the CLI does.
   0, or -1 with err. */
static int
verify_files(const ag_audit_key_t *k, const ag_jwks_t *jwks,
    const char *const *texts, const size_t *lens, size_t n,
    ag_audit_verify_stats_t *st, char *err, size_t errlen)
{
    int                   rc;
    size_t                i;
    const char           *p, *e, *last;
    ag_audit_verifier_t  *v;

    v = ag_audit_verifier_new(k, jwks);
    assert_non_null(v);
    rc = 0;
    err[0] = '\0';

    for (i = 0; rc == 0 && i < n; i++) {
        for (p = texts[i], last = texts[i] + lens[i]; rc == 0 && p < last;
             p = e + 1)
        {
            e = memchr(p, '\n', (size_t) (last - p));
            if (e == NULL) {
                rc = ag_audit_verify_line(v, p, (size_t) (last - p), 0, err,
                                          errlen);
                break;
            }
            rc = ag_audit_verify_line(v, p, (size_t) (e - p), 1, err, errlen);
        }
    }

    if (rc == 0) {
        rc = ag_audit_verify_end(v, err, errlen);
    }

    if (st != NULL) {
        ag_audit_verify_stats(v, st);
    }

    ag_audit_verifier_free(v);
    return rc;
}


static int
verify_text(const ag_audit_key_t *k, const ag_jwks_t *jwks, const char *text,
    size_t len, ag_audit_verify_stats_t *st, char *err, size_t errlen)
{
    return verify_files(k, jwks, &text, &len, 1, st, err, errlen);
}


#define assert_verify_ok(k, jwks, text, len, st)                              \
    do {                                                                      \
        char  err_[512];                                                      \
        if (verify_text(k, jwks, text, len, st, err_, sizeof(err_)) != 0) {   \
            fail_msg("verify failed: %s", err_);                              \
        }                                                                     \
    } while (0)

#define assert_verify_fails(k, jwks, text, len, want)                         \
    do {                                                                      \
        char  err_[512];                                                      \
        assert_int_equal(verify_text(k, jwks, text, len, NULL, err_,          \
                                     sizeof(err_)), -1);                      \
        if (strstr(err_, want) == NULL) {                                     \
            fail_msg("error \"%s\" does not say \"%s\"", err_, want);         \
        }                                                                     \
    } while (0)


/* A file with the given bytes; its fd is open for reading. */
static int
temp_file(const char *data, size_t len, char *path)
{
    int  fd;

    strcpy(path, "/tmp/ag-test-audit-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t) len);
    return fd;
}


static void
sha256_hex(const void *data, size_t len, char out[AG_AUDIT_HEX + 1])
{
    size_t         i;
    unsigned int   n;
    unsigned char  md[32];

    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}


/* An Ed25519 signing key as the gateway loads it (PEM, through
   ag_key_load_private), its kid, and the JWKS of its public half. */
typedef struct {
    EVP_PKEY    *key;
    char         kid[64];
    ag_jwks_t   *jwks;
} signer_t;


static void
signer_new(signer_t *s, const char *type)
{
    int       fd;
    char      path[64], err[256], *text;
    FILE     *f;
    json_t   *doc;
    EVP_PKEY *gen;

    gen = strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                  : EVP_PKEY_Q_keygen(NULL, NULL, type);
    assert_non_null(gen);

    strcpy(path, "/tmp/ag-test-audit-key-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, gen, NULL, NULL, 0, NULL, NULL),
                     1);
    fclose(f);
    EVP_PKEY_free(gen);

    s->key = ag_key_load_private(path, err, sizeof(err));
    unlink(path);
    if (s->key == NULL) {
        fail_msg("%s", err);
    }

    assert_int_equal(ag_key_thumbprint(s->key, s->kid, sizeof(s->kid)), 0);

    doc = json_pack("{s:[o]}", "keys", ag_jwk_public(s->key, s->kid));
    assert_non_null(doc);
    text = json_dumps(doc, 0);
    json_decref(doc);
    assert_non_null(text);

    s->jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    free(text);
    if (s->jwks == NULL) {
        fail_msg("%s", err);
    }
}


static void
signer_free(signer_t *s)
{
    EVP_PKEY_free(s->key);
    ag_jwks_free(s->jwks);
}


/* what rewrite() does with a checkpoint record */
typedef enum {
    CP_KEEP = 0,        /* copied as it was */
    CP_RENAME,          /* names the new hash, keeps the old JWS */
    CP_RESIGN           /* names the new hash, signed anew with sk */
} cp_mode_t;


/*
 * Rewrite lines from index `from` on with the HMAC key k, as someone who
 * holds the HMAC key but not the signing key would: every record re-sealed
 * with its own seq, ts and body, prev chained anew.
 */
static void
rewrite(lines_t *l, size_t from, const ag_audit_key_t *k, cp_mode_t mode,
    EVP_PKEY *sk, const char *kid)
{
    char              err[256], prev[AG_AUDIT_HEX], hash[AG_AUDIT_HEX];
    char            (*hashes)[AG_AUDIT_HEX];
    size_t            i, blen;
    json_t           *rec, *cp;
    uint64_t          s;
    ag_buf_t          out, body;
    const char       *b;
    ag_audit_line_t   pl;

    hashes = calloc(l->n + 2, AG_AUDIT_HEX);
    assert_non_null(hashes);
    memset(&out, 0, sizeof(out));
    memset(&body, 0, sizeof(body));
    memcpy(prev, ZERO64, AG_AUDIT_HEX);

    for (i = 0; i < l->n; i++) {
        assert_int_equal(ag_audit_line_parse(l->v[i], strlen(l->v[i]), &pl,
                                             err, sizeof(err)), 0);
        assert_true(pl.seq <= l->n + 1);

        if (i < from) {
            memcpy(prev, pl.hash, AG_AUDIT_HEX);
            memcpy(hashes[pl.seq], pl.hash, AG_AUDIT_HEX);
            continue;
        }

        b = pl.event.p - strlen("\"event\":\"");
        blen = pl.signed_len - strlen(",\"prev\":\"") - AG_AUDIT_HEX - 1
               - (size_t) (b - l->v[i]);
        ag_buf_reset(&body);

        if (mode != CP_KEEP && pl.event.len == 10
            && memcmp(pl.event.p, "checkpoint", 10) == 0)
        {
            rec = ag_json_parse(l->v[i], strlen(l->v[i]), err, sizeof(err));
            assert_non_null(rec);
            cp = json_object_get(rec, "checkpoint");
            s = (uint64_t) json_integer_value(json_object_get(cp, "seq"));

            if (mode == CP_RESIGN) {
                assert_int_equal(ag_audit_checkpoint_body(sk, kid, ISS, s,
                                     hashes[s], 1795428000, &body, err,
                                     sizeof(err)), 0);
            } else {
                ag_buf_str(&body, "\"event\":\"checkpoint\",\"checkpoint\":"
                           "{\"seq\":");
                ag_buf_u64(&body, s);
                ag_buf_str(&body, ",\"hash\":\"");
                ag_buf_add(&body, hashes[s], AG_AUDIT_HEX);
                ag_buf_str(&body, "\",\"jws\":\"");
                ag_buf_str(&body, json_string_value(json_object_get(cp,
                                                                    "jws")));
                ag_buf_str(&body, "\"}");
            }
            json_decref(rec);

        } else {
            ag_buf_add(&body, b, blen);
        }

        ag_buf_reset(&out);
        assert_int_equal(ag_audit_seal(k, pl.seq, ts_of(pl.seq), body.p,
                                       body.len, prev, &out, hash), 0);
        memcpy(prev, hash, AG_AUDIT_HEX);
        memcpy(hashes[pl.seq], hash, AG_AUDIT_HEX);

        free(l->v[i]);
        l->v[i] = strndup(out.p, out.len - 1);
    }

    ag_buf_free(&out);
    ag_buf_free(&body);
    free(hashes);
}


/* --- JSON strings ------------------------------------------------------------- */

static void
test_json_str(void **state)
{
    char  *s;

    (void) state;

    s = json_str("plain text / ok", 15);
    assert_string_equal(s, "\"plain text / ok\"");
    free(s);

    s = json_str("q\"b\\n\nr\rt\t", 10);
    assert_string_equal(s, "\"q\\\"b\\\\n\\nr\\rt\\t\"");
    free(s);

    /* other controls, DEL and NUL (lengths are explicit) */
    s = json_str("a\x01" "b\x1f" "c\x7f" "d\0e", 9);
    assert_string_equal(s, "\"a\\u0001b\\u001fc\\u007fd\\u0000e\"");
    free(s);

    s = json_str("", 0);
    assert_string_equal(s, "\"\"");
    free(s);

    /* UTF-8 passes through: 2, 3 and 4 bytes */
    s = json_str("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    assert_string_equal(s, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    free(s);
}


static void
test_json_str_invalid_utf8(void **state)
{
    char  *s;

    (void) state;

    /* a lone continuation byte, and 0xff */
    s = json_str("a\x80" "b\xff", 4);
    assert_string_equal(s, "\"a\\ufffdb\\ufffd\"");
    free(s);

    /* overlong '/' (c0 af): each byte replaced */
    s = json_str("\xc0\xaf", 2);
    assert_string_equal(s, "\"\\ufffd\\ufffd\"");
    free(s);

    /* a surrogate (ed a0 80) and a code point over U+10FFFF (f4 90 80 80) */
    s = json_str("\xed\xa0\x80", 3);
    assert_string_equal(s, "\"\\ufffd\\ufffd\\ufffd\"");
    free(s);
    s = json_str("\xf4\x90\x80\x80", 4);
    assert_string_equal(s, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    free(s);

    /* a sequence cut by the end of the string, then one cut by ASCII */
    s = json_str("x\xe2\x82", 3);
    assert_string_equal(s, "\"x\\ufffd\\ufffd\"");
    free(s);
    s = json_str("\xe2" "ab", 3);
    assert_string_equal(s, "\"\\ufffdab\"");
    free(s);

    /* whatever came in, the output is valid JSON of valid UTF-8 */
    s = json_str("\xff\"\\\x01\xc3", 5);
    {
        char     err[128];
        json_t  *v = ag_json_parse(s, strlen(s), err, sizeof(err));

        assert_non_null(v);
        assert_string_equal(json_string_value(v),
                            "\xef\xbf\xbd\"\\\x01\xef\xbf\xbd");
        json_decref(v);
    }
    free(s);
}


/* --- timestamps ----------------------------------------------------------------- */

static void
test_ts(void **state)
{
    char  ts[AG_AUDIT_TS_LEN + 1];

    (void) state;

    ag_audit_ts(0, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000000Z");

    ag_audit_ts(TS0 + 123456, ts);
    assert_string_equal(ts, "2026-11-23T10:00:00.123456Z");

    ag_audit_ts(TS0 + 7, ts);
    assert_string_equal(ts, "2026-11-23T10:00:00.000007Z");

    ag_audit_ts(-5, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000000Z");

    /* the text keeps its length whatever the clock says */
    ag_audit_ts(INT64_MAX, ts);
    assert_string_equal(ts, "9999-12-31T23:59:59.999999Z");
    assert_int_equal(strlen(ts), AG_AUDIT_TS_LEN);

    ag_audit_ts(INT64_C(951782400) * 1000000, ts);       /* a leap day */
    assert_string_equal(ts, "2000-02-29T00:00:00.000000Z");

    ag_audit_ts(INT64_C(4107542399) * 1000000, ts);      /* 2100: no leap */
    assert_string_equal(ts, "2100-02-28T23:59:59.000000Z");
}


/* The date by hand agrees with the C library's, second by second across
   leap years and centuries. */
static void
test_ts_libc(void **state)
{
    int64_t    t;
    time_t     tt;
    char       ts[AG_AUDIT_TS_LEN + 1], want[32];
    struct tm  tm;

    (void) state;

    for (t = 0; t < INT64_C(253402300799); t += 86399 * 7 + 12345) {
        tt = (time_t) t;
        assert_non_null(gmtime_r(&tt, &tm));
        assert_int_equal(strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm),
                         19);
        ag_audit_ts(t * 1000000, ts);
        assert_memory_equal(ts, want, 19);
    }
}


/* --- the key and HMAC ------------------------------------------------------------ */

static void
check_hmac(const unsigned char *k, size_t klen, const char *data,
    const char *want)
{
    char             hex[AG_AUDIT_HEX + 1];
    ag_audit_key_t  *ak;

    ak = key_new(k, klen);
    assert_int_equal(ag_audit_hmac(ak, data, strlen(data), hex), 0);
    hex[AG_AUDIT_HEX] = '\0';
    assert_string_equal(hex, want);
    ag_audit_key_free(ak);
}


static void
test_hmac_vectors(void **state)
{
    unsigned char  k[131];

    (void) state;

    /* RFC 4231 test case 6: a key longer than the block, hashed first */
    memset(k, 0xaa, sizeof(k));
    check_hmac(k, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    /* RFC 4231 test case 7 */
    check_hmac(k, 131, "This is a test using a larger than block-size key and "
               "a larger than block-size data. The key needs to be hashed "
               "before being used by the HMAC algorithm.",
               "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");

    /* a key of exactly one block */
    memset(k, 0x0b, 64);
    check_hmac(k, 64, "Hi There",
               "21cd586aeca0579d99a1c938127c92525a371f807bc5ba6eb78bc825bd4f2be3");

    /* the shortest key allowed: printf '...' | openssl dgst -sha256 -hmac K */
    check_hmac((const unsigned char *) "agentgov-audit-key-of-32-bytes!!", 32,
               "what do ya want for nothing?",
               "b66c7c45e7f6d30844cb5f14cc5bba5e5a087bcf434bd8ae82f0eded8e387985");
}


static void
test_key_limits(void **state)
{
    int              fd;
    char             err[256], path[64];
    unsigned char    big[AG_AUDIT_KEY_MAX + 1];
    ag_audit_key_t  *k;

    (void) state;

    memset(big, 7, sizeof(big));

    assert_null(ag_audit_key_new(key1, 31, err, sizeof(err)));
    assert_non_null(strstr(err, "32 to 4096 bytes, not 31"));
    assert_null(ag_audit_key_new(big, sizeof(big), err, sizeof(err)));

    k = ag_audit_key_new(big, AG_AUDIT_KEY_MAX, err, sizeof(err));
    assert_non_null(k);
    ag_audit_key_free(k);

    /* a file's whole content is the key: the same HMAC as from memory */
    fd = temp_file("agentgov-audit-key-of-32-bytes!!", 32, path);
    close(fd);
    k = ag_audit_key_load(path, err, sizeof(err));
    unlink(path);
    assert_non_null(k);
    {
        char  hex[AG_AUDIT_HEX + 1];

        assert_int_equal(ag_audit_hmac(k, "what do ya want for nothing?", 28,
                                       hex), 0);
        hex[AG_AUDIT_HEX] = '\0';
        assert_string_equal(hex, "b66c7c45e7f6d30844cb5f14cc5bba5e5a087bcf43"
                            "4bd8ae82f0eded8e387985");
    }
    ag_audit_key_free(k);

    fd = temp_file("short", 5, path);
    close(fd);
    assert_null(ag_audit_key_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    unlink(path);
}


/* --- sealing and the line form ----------------------------------------------------- */

static void
test_seal_vector(void **state)
{
    char             hash[AG_AUDIT_HEX];
    ag_buf_t         out;
    ag_audit_key_t  *k;

    (void) state;

    /* python3: hmac.new(bytes(range(1, 33)), <the line before ,"hash">,
       hashlib.sha256).hexdigest() */
    k = key_new(key1, sizeof(key1));
    memset(&out, 0, sizeof(out));
    assert_int_equal(ag_audit_seal(k, 1, TS0, "\"event\":\"call\"", 14,
                                   ZERO64, &out, hash), 0);
    ag_buf_add(&out, "", 1);

    assert_string_equal(out.p,
        "{\"seq\":1,\"ts\":\"2026-11-23T10:00:00.000000Z\",\"event\":\"call\","
        "\"prev\":\"" ZERO64 "\",\"hash\":\"40df58f13da426cfae7804d4036494dc"
        "a765a7180d69e28ea7edec239c73762e\"}\n");
    assert_memory_equal(hash, "40df58f13da426cfae7804d4036494dca765a7180d69e2"
                        "8ea7edec239c73762e", AG_AUDIT_HEX);

    ag_buf_free(&out);
    ag_audit_key_free(k);
}


static void
test_seal_parse_round_trip(void **state)
{
    char             err[128], hash[AG_AUDIT_HEX], again[AG_AUDIT_HEX];
    char             prev[AG_AUDIT_HEX];
    json_t          *v;
    chain_t          c;
    ag_audit_line_t  l;
    ag_audit_key_t  *k;

    (void) state;

    k = key_new(key1, sizeof(key1));
    chain_init(&c, k);
    chain_add_call(&c, 1);
    memcpy(prev, c.hash, AG_AUDIT_HEX);
    chain_add_call(&c, 2);

    /* the second line: seq 2, its prev the first's hash */
    {
        const char  *line = memchr(c.text.p, '\n', c.text.len) + 1;
        size_t       len = c.text.p + c.text.len - line - 1;

        assert_int_equal(line[len], '\n');
        assert_int_equal(ag_audit_line_parse(line, len, &l, err, sizeof(err)),
                         0);
        assert_int_equal(l.seq, 2);
        assert_int_equal(l.ts.len, AG_AUDIT_TS_LEN);
        assert_memory_equal(l.ts.p, "2026-11-23T10:00:00.002468Z",
                            AG_AUDIT_TS_LEN);
        assert_int_equal(l.event.len, 6);
        assert_memory_equal(l.event.p, "result", 6);
        assert_memory_equal(l.prev, prev, AG_AUDIT_HEX);
        assert_memory_equal(l.hash, c.hash, AG_AUDIT_HEX);
        assert_memory_equal(line + l.signed_len, ",\"hash\":\"", 9);

        /* the hash is the HMAC of exactly the bytes before ,"hash" */
        assert_int_equal(ag_audit_hmac(k, line, l.signed_len, again), 0);
        assert_memory_equal(again, l.hash, AG_AUDIT_HEX);

        /* and the line is JSON that says what the record said */
        v = ag_json_parse(line, len, err, sizeof(err));
        assert_non_null(v);
        assert_string_equal(json_string_value(json_object_get(v, "reason")),
                            "amount under 100 \"EUR\"");
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(v, "action"), "path")),
                            "/v1/refunds/2");
        assert_int_equal(json_integer_value(json_object_get(v, "seq")), 2);
        json_decref(v);
    }

    /* sealing is deterministic */
    {
        ag_buf_t  out;

        memset(&out, 0, sizeof(out));
        assert_int_equal(ag_audit_seal(k, 7, TS0, "\"event\":\"x\"", 11,
                                       prev, &out, hash), 0);
        assert_int_equal(ag_audit_seal(k, 7, TS0, "\"event\":\"x\"", 11,
                                       prev, &out, again), 0);
        assert_memory_equal(hash, again, AG_AUDIT_HEX);
        assert_memory_equal(out.p, out.p + out.len / 2, out.len / 2);
        ag_buf_free(&out);
    }

    chain_free(&c);
    ag_audit_key_free(k);
}


static void
check_parse_fails(const char *line, const char *why)
{
    char             err[128];
    ag_audit_line_t  l;

    if (ag_audit_line_parse(line, strlen(line), &l, err, sizeof(err)) == 0) {
        fail_msg("parsed: %s", line);
    }
    if (strstr(err, why) == NULL) {
        fail_msg("\"%s\" does not say \"%s\" for %s", err, why, line);
    }
}


#define TAIL  ",\"prev\":\"" ZERO64 "\",\"hash\":\"" ZERO64 "\"}"
#define TS    "\"ts\":\"2026-11-23T10:00:00.000000Z\""

static void
test_line_parse_rejects(void **state)
{
    char             err[128];
    ag_audit_line_t  l;
    const char      *ok = "{\"seq\":12," TS ",\"event\":\"call\"" TAIL;

    (void) state;

    assert_int_equal(ag_audit_line_parse(ok, strlen(ok), &l, err,
                                         sizeof(err)), 0);
    assert_int_equal(l.seq, 12);

    check_parse_fails("", "not an audit record");
    check_parse_fails("garbage", "not an audit record");
    check_parse_fails("{\"seq\": 1," TS ",\"event\":\"call\"" TAIL,
                      "not a number");
    check_parse_fails("{\"seq\":0," TS ",\"event\":\"call\"" TAIL,
                      "not a number from 1");
    check_parse_fails("{\"seq\":01," TS ",\"event\":\"call\"" TAIL,
                      "not a number from 1");
    check_parse_fails("{\"seq\":12345678901234567890," TS ",\"event\":\"c\""
                      TAIL, "not a number from 1");
    check_parse_fails("{\"seq\":-1," TS ",\"event\":\"call\"" TAIL,
                      "not a number from 1");
    check_parse_fails("{\"seq\":1,\"time\":\"2026-11-23T10:00:00.000000Z\","
                      "\"event\":\"call\"" TAIL, "no ts after seq");
    check_parse_fails("{\"seq\":1,\"ts\":\"2026-11-23T10:00:00.000000+\","
                      "\"event\":\"call\"" TAIL, "no event after ts");
    check_parse_fails("{\"seq\":1," TS ",\"what\":\"call\"" TAIL,
                      "no event after ts");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"Call\"" TAIL,
                      "event is not a name");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"\"" TAIL,
                      "event is not a name");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"call\",\"prev\":\""
                      ZERO64 "\",\"x\":1,\"hash\":\"" ZERO64 "\"}",
                      "prev is not the last member but hash");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"call\",\"prev\":\""
                      "000000000000000000000000000000000000000000000000000000"
                      "000000000A\",\"hash\":\"" ZERO64 "\"}",
                      "prev is not 64 lower-case hex digits");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"call\",\"prev\":\""
                      ZERO64 "\",\"hash\":\"" ZERO64 "\"} ",
                      "is not");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"call\",\"prev\":\""
                      ZERO64 "\",\"hasx\":\"" ZERO64 "\"}",
                      "hash is not the last member");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"call\",\"prev\":\""
                      ZERO64 "\",\"hash\":\"" ZERO64 "x\"}",
                      "is not");
    check_parse_fails("{\"seq\":1," TS ",\"event\":\"call\",\"prev\":\""
                      ZERO64 "\",\"hash\":\"0000000000000000000000000000000"
                      "00000000000000000000000000000000g\"}",
                      "hash is not 64 lower-case hex digits");

    /* every cut of a good line is refused */
    {
        size_t  n;

        for (n = 0; n < strlen(ok); n++) {
            assert_int_equal(ag_audit_line_parse(ok, n, &l, err, sizeof(err)),
                             -1);
        }
    }
}


/* --- the end of a file ------------------------------------------------------------ */

static void
tail_of(const char *data, size_t len, ag_audit_tail_t *t)
{
    int   fd;
    char  path[64], err[256];

    fd = temp_file(data, len, path);
    if (ag_audit_tail(fd, t, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    close(fd);
    unlink(path);
}


static void
test_tail(void **state)
{
    char              sha[AG_AUDIT_HEX + 1], h3[AG_AUDIT_HEX];
    size_t            clean;
    chain_t           c;
    ag_buf_t          b;
    ag_audit_tail_t   t;
    ag_audit_key_t   *k;
    const char       *partial = "{\"seq\":4,\"ts\":\"2026-11";
    const char       *garbage = "not a record\n{\"seq\":4}\n";

    (void) state;

    k = key_new(key1, sizeof(key1));
    chain_init(&c, k);
    chain_add_call(&c, 1);
    chain_add_call(&c, 2);
    chain_add_call(&c, 3);
    memcpy(h3, c.hash, AG_AUDIT_HEX);
    clean = c.text.len;

    /* empty */
    tail_of("", 0, &t);
    assert_int_equal(t.found, 0);
    assert_int_equal(t.size, 0);
    assert_int_equal(t.partial_len, 0);

    /* clean */
    tail_of(c.text.p, c.text.len, &t);
    assert_int_equal(t.found, 1);
    assert_int_equal(t.seq, 3);
    assert_memory_equal(t.hash, h3, AG_AUDIT_HEX);
    assert_int_equal(t.size, (off_t) clean);
    assert_int_equal(t.partial_len, 0);

    /* a line cut by a crash */
    ag_buf_add(&c.text, partial, strlen(partial));
    tail_of(c.text.p, c.text.len, &t);
    assert_int_equal(t.found, 1);
    assert_int_equal(t.seq, 3);
    assert_memory_equal(t.hash, h3, AG_AUDIT_HEX);
    assert_int_equal(t.partial_offset, (off_t) clean);
    assert_int_equal(t.partial_len, (off_t) strlen(partial));
    assert_int_equal(t.partial_newline, 1);
    sha256_hex(partial, strlen(partial), sha);
    assert_memory_equal(t.partial_sha256, sha, AG_AUDIT_HEX);

    /* whole lines that are not records: all of them, but the '\n' that
       ends the file */
    c.text.len = clean;
    ag_buf_add(&c.text, garbage, strlen(garbage));
    tail_of(c.text.p, c.text.len, &t);
    assert_int_equal(t.seq, 3);
    assert_int_equal(t.partial_offset, (off_t) clean);
    assert_int_equal(t.partial_len, (off_t) strlen(garbage) - 1);
    assert_int_equal(t.partial_newline, 0);
    sha256_hex(garbage, strlen(garbage) - 1, sha);
    assert_memory_equal(t.partial_sha256, sha, AG_AUDIT_HEX);

    /* a whole record with no '\n' is not whole */
    c.text.len = clean - 1;
    tail_of(c.text.p, c.text.len, &t);
    assert_int_equal(t.seq, 2);
    assert_true(t.partial_len > 100);

    /* only a partial line */
    tail_of(partial, strlen(partial), &t);
    assert_int_equal(t.found, 0);
    assert_int_equal(t.partial_offset, 0);
    assert_int_equal(t.partial_len, (off_t) strlen(partial));

    /* the restart record says all that */
    tail_of(garbage, strlen(garbage), &t);
    memset(&b, 0, sizeof(b));
    ag_audit_restart_body(&t, &b);
    ag_buf_add(&b, "", 1);
    sha256_hex(garbage, strlen(garbage) - 1, sha);
    assert_non_null(strstr(b.p, "\"event\":\"restart\""));
    assert_non_null(strstr(b.p, "\"partial\":{\"offset\":0,\"bytes\":22,"));
    assert_non_null(strstr(b.p, sha));
    ag_buf_free(&b);

    chain_free(&c);
    ag_audit_key_free(k);
}


/* --- the verifier: good chains -------------------------------------------------------- */

static void
test_verify_good(void **state)
{
    int                       i;
    chain_t                   c;
    ag_audit_key_t           *k;
    ag_audit_verify_stats_t   st;

    (void) state;

    k = key_new(key1, sizeof(key1));
    chain_init(&c, k);
    for (i = 1; i <= 200; i++) {
        chain_add_call(&c, i);
    }

    assert_verify_ok(k, NULL, c.text.p, c.text.len, &st);
    assert_int_equal(st.records, 200);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 200);
    assert_int_equal(st.checkpoints, 0);
    assert_int_equal(st.restarts, 0);

    /* nothing at all is no broken record */
    assert_verify_ok(k, NULL, "", 0, &st);
    assert_int_equal(st.records, 0);

    /* another key breaks the first record */
    {
        ag_audit_key_t  *k2 = key_new(key2, sizeof(key2));

        assert_verify_fails(k2, NULL, c.text.p, c.text.len,
                            "seq 1: hash does not match");
        ag_audit_key_free(k2);
    }

    chain_free(&c);
    ag_audit_key_free(k);
}


static void
test_verify_files(void **state)
{
    int                       i;
    char                      err[512];
    size_t                    cut, lens[3];
    chain_t                   c;
    const char               *texts[3];
    ag_audit_key_t           *k;
    ag_audit_verify_stats_t   st;

    (void) state;

    k = key_new(key1, sizeof(key1));
    chain_init(&c, k);
    for (i = 1; i <= 20; i++) {
        chain_add_call(&c, i);
    }

    /* rotated after seq 10: the files in order are one chain */
    cut = 0;
    for (i = 0; i < 10; i++) {
        cut = (const char *) memchr(c.text.p + cut, '\n', c.text.len - cut)
              - c.text.p + 1;
    }
    texts[0] = c.text.p;
    lens[0] = cut;
    texts[1] = c.text.p + cut;
    lens[1] = c.text.len - cut;

    assert_int_equal(verify_files(k, NULL, texts, lens, 2, &st, err,
                                  sizeof(err)), 0);
    assert_int_equal(st.records, 20);

    /* the second file alone starts mid-chain: fine */
    assert_int_equal(verify_files(k, NULL, texts + 1, lens + 1, 1, &st, err,
                                  sizeof(err)), 0);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.last_seq, 20);

    /* but out of order they are not one chain */
    texts[2] = texts[0];
    lens[2] = lens[0];
    assert_int_equal(verify_files(k, NULL, texts + 1, lens + 1, 2, &st, err,
                                  sizeof(err)), -1);
    assert_non_null(strstr(err, "seq 1: expected seq 21 after seq 20"));

    /* nor the same file twice */
    texts[1] = texts[0];
    lens[1] = lens[0];
    assert_int_equal(verify_files(k, NULL, texts, lens, 2, &st, err,
                                  sizeof(err)), -1);
    assert_non_null(strstr(err, "seq 1: expected seq 11 after seq 10"));

    chain_free(&c);
    ag_audit_key_free(k);
}


/* --- the verifier: tampering ---------------------------------------------------------- */

typedef struct {
    ag_audit_key_t  *k;
    chain_t          c;
    lines_t          l;
    ag_buf_t         out;
} tamper_t;


static int
tamper_setup(void **state)
{
    int        i;
    tamper_t  *t;

    t = calloc(1, sizeof(tamper_t));
    t->k = key_new(key1, sizeof(key1));
    chain_init(&t->c, t->k);
    for (i = 1; i <= 50; i++) {
        chain_add_call(&t->c, i);
    }
    lines_split(&t->l, t->c.text.p, t->c.text.len);
    assert_int_equal(t->l.n, 50);

    *state = t;
    return 0;
}


static int
tamper_teardown(void **state)
{
    tamper_t  *t = *state;

    lines_free(&t->l);
    ag_buf_free(&t->out);
    chain_free(&t->c);
    ag_audit_key_free(t->k);
    free(t);
    return 0;
}


#define tamper_fails(t, want)                                                 \
    do {                                                                      \
        lines_join(&(t)->l, &(t)->out);                                       \
        assert_verify_fails((t)->k, NULL, (t)->out.p, (t)->out.len, want);    \
    } while (0)


static void
test_tamper_edit(void **state)
{
    char      *p;
    tamper_t  *t = *state;

    /* seq 20 (line 20): its decision changed */
    p = strstr(t->l.v[19], "\"decision\":\"deny\"");
    assert_non_null(p);
    memcpy(p + 12, "DENY", 4);
    tamper_fails(t, "seq 20: hash does not match (the record was changed");
}


static void
test_tamper_edit_seq(void **state)
{
    tamper_t  *t = *state;

    /* seq 7 renumbered 8: the HMAC covers seq too */
    assert_memory_equal(t->l.v[6], "{\"seq\":7,", 9);
    t->l.v[6][7] = '8';
    tamper_fails(t, "seq 8: hash does not match");
}


static void
test_tamper_delete(void **state)
{
    tamper_t  *t = *state;

    free(t->l.v[19]);
    memmove(&t->l.v[19], &t->l.v[20], (t->l.n - 20) * sizeof(char *));
    t->l.n--;
    tamper_fails(t, "seq 21: expected seq 20 after seq 19 (a record is "
                 "missing, reordered or inserted)");
}


static void
test_tamper_delete_last(void **state)
{
    char                      err[512];
    tamper_t                 *t = *state;
    ag_audit_verify_stats_t   st;

    /* the head cut off cleanly is what only a checkpoint kept elsewhere can
       tell: the chain itself is still whole */
    free(t->l.v[--t->l.n]);
    lines_join(&t->l, &t->out);
    assert_int_equal(verify_text(t->k, NULL, t->out.p, t->out.len, &st, err,
                                 sizeof(err)), 0);
    assert_int_equal(st.last_seq, 49);
}


static void
test_tamper_swap(void **state)
{
    char      *s;
    tamper_t  *t = *state;

    s = t->l.v[29];
    t->l.v[29] = t->l.v[30];
    t->l.v[30] = s;
    tamper_fails(t, "seq 31: expected seq 30 after seq 29");
}


static void
test_tamper_insert_copy(void **state)
{
    tamper_t  *t = *state;

    /* a copy of seq 5 after seq 40 */
    memmove(&t->l.v[41], &t->l.v[40], (t->l.n - 40) * sizeof(char *));
    t->l.v[40] = strdup(t->l.v[4]);
    t->l.n++;
    tamper_fails(t, "seq 5: expected seq 41 after seq 40");
}


static void
test_tamper_insert_forged(void **state)
{
    char             hash[AG_AUDIT_HEX], err[128];
    ag_buf_t         b;
    tamper_t        *t = *state;
    ag_audit_line_t  l;

    /* a record sealed with another key, linked to seq 40 */
    assert_int_equal(ag_audit_line_parse(t->l.v[39], strlen(t->l.v[39]), &l,
                                         err, sizeof(err)), 0);
    memset(&b, 0, sizeof(b));
    {
        ag_audit_key_t  *k2 = key_new(key2, sizeof(key2));

        assert_int_equal(ag_audit_seal(k2, 41, ts_of(41),
                                       "\"event\":\"call\"", 14, l.hash, &b,
                                       hash), 0);
        ag_audit_key_free(k2);
    }
    memmove(&t->l.v[41], &t->l.v[40], (t->l.n - 40) * sizeof(char *));
    t->l.v[40] = strndup(b.p, b.len - 1);
    t->l.n++;
    ag_buf_free(&b);

    tamper_fails(t, "seq 41: hash does not match");
}


static void
test_tamper_insert_garbage(void **state)
{
    tamper_t  *t = *state;

    /* a line that is no record, in the middle: line 11 */
    memmove(&t->l.v[11], &t->l.v[10], (t->l.n - 10) * sizeof(char *));
    t->l.v[10] = strdup("{\"seq\":11,\"note\":\"hello\"}");
    t->l.n++;
    tamper_fails(t, "line 11: not a record (not an audit record)");
}


static void
test_tamper_prev(void **state)
{
    char             hash[AG_AUDIT_HEX], err[128];
    ag_buf_t         b;
    tamper_t        *t = *state;
    ag_audit_line_t  l;

    /* seq 30 re-sealed with the right key, but linked to seq 28 */
    assert_int_equal(ag_audit_line_parse(t->l.v[27], strlen(t->l.v[27]), &l,
                                         err, sizeof(err)), 0);
    memset(&b, 0, sizeof(b));
    assert_int_equal(ag_audit_seal(t->k, 30, ts_of(30), "\"event\":\"call\"",
                                   14, l.hash, &b, hash), 0);
    free(t->l.v[29]);
    t->l.v[29] = strndup(b.p, b.len - 1);
    ag_buf_free(&b);

    tamper_fails(t, "seq 30: prev does not match seq 29's hash");
}


static void
test_tamper_first_prev(void **state)
{
    char      hash[AG_AUDIT_HEX];
    ag_buf_t  b;
    tamper_t *t = *state;

    /* seq 1 always begins a chain: its prev is zeros */
    memset(&b, 0, sizeof(b));
    assert_int_equal(ag_audit_seal(t->k, 1, ts_of(1), "\"event\":\"call\"", 14,
                                   "1111111111111111111111111111111111111111"
                                   "111111111111111111111111", &b, hash), 0);
    assert_verify_fails(t->k, NULL, b.p, b.len, "seq 1: prev is not 64 zeros");
    ag_buf_free(&b);
}


static void
test_tamper_after_failure(void **state)
{
    char                  err[256];
    tamper_t             *t = *state;
    ag_audit_verifier_t  *v;

    /* once broken, always broken */
    v = ag_audit_verifier_new(t->k, NULL);
    assert_int_equal(ag_audit_verify_line(v, t->l.v[1], strlen(t->l.v[1]), 1,
                                          err, sizeof(err)), 0);
    assert_int_equal(ag_audit_verify_line(v, t->l.v[3], strlen(t->l.v[3]), 1,
                                          err, sizeof(err)), -1);
    assert_int_equal(ag_audit_verify_line(v, t->l.v[2], strlen(t->l.v[2]), 1,
                                          err, sizeof(err)), -1);
    assert_int_equal(ag_audit_verify_end(v, err, sizeof(err)), -1);
    ag_audit_verifier_free(v);

    assert_null(ag_audit_verifier_new(NULL, NULL));
    ag_audit_verifier_free(NULL);
}


/* --- the verifier: crashes and restarts ----------------------------------------------- */

/*
 * The file in t, cut after `keep` bytes of record `cut` (1-based) and with
 * `junk` appended, then continued as the gateway continues it after a
 * restart: ag_audit_tail, a '\n' if the file does not end with one,
 * the restart record, then `more` records. sha_forge changes the restart's
 * sha256, bytes_delta its byte count.
 */
static void
crash_and_restart(tamper_t *t, size_t cut, size_t keep, const char *junk,
    int restart, int sha_forge, int bytes_delta, int more)
{
    int               i;
    size_t            n;
    chain_t           c;
    ag_buf_t          b;
    ag_audit_tail_t   tail;

    ag_buf_reset(&t->out);
    for (n = 0; n < cut - 1; n++) {
        ag_buf_str(&t->out, t->l.v[n]);
        ag_buf_add(&t->out, "\n", 1);
    }
    ag_buf_add(&t->out, t->l.v[cut - 1], keep);
    ag_buf_str(&t->out, junk);

    if (!restart) {
        return;
    }

    tail_of(t->out.p, t->out.len, &tail);
    assert_int_equal(tail.seq, cut - 1);
    assert_true(tail.partial_len > 0);

    if (sha_forge) {
        tail.partial_sha256[0] = tail.partial_sha256[0] == '0' ? '1' : '0';
    }
    tail.partial_len += bytes_delta;

    assert_int_equal(tail.partial_newline, t->out.p[t->out.len - 1] != '\n');
    if (tail.partial_newline) {
        ag_buf_add(&t->out, "\n", 1);
    }

    chain_init(&c, t->k);
    c.seq = tail.seq;
    memcpy(c.hash, tail.found ? tail.hash : ZERO64, AG_AUDIT_HEX);

    memset(&b, 0, sizeof(b));
    ag_audit_restart_body(&tail, &b);
    chain_add_body(&c, b.p, b.len);
    ag_buf_free(&b);

    for (i = 0; i < more; i++) {
        chain_add_call(&c, 100 + i);
    }

    ag_buf_add(&t->out, c.text.p, c.text.len);
    chain_free(&c);
}


static void
test_crash_cut_without_restart(void **state)
{
    tamper_t  *t = *state;

    /* the file ends in the middle of seq 50 */
    crash_and_restart(t, 50, 100, "", 0, 0, 0, 0);
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "line 50: not a record (the line is cut short), and no "
                        "restart record follows it");

    /* a cut line in the middle of the file, followed by records that go on
       as if nothing happened: the cut line is the fault */
    crash_and_restart(t, 30, 100, "\n", 0, 0, 0, 0);
    {
        size_t  n;

        for (n = 30; n < t->l.n; n++) {
            ag_buf_str(&t->out, t->l.v[n]);
            ag_buf_add(&t->out, "\n", 1);
        }
    }
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "line 30: not a record (");
}


static void
test_crash_restart(void **state)
{
    char                      err[512];
    tamper_t                 *t = *state;
    ag_audit_verify_stats_t   st;

    /* cut in the middle of seq 50; the gateway adds '\n' and restarts */
    crash_and_restart(t, 50, 100, "", 1, 0, 0, 5);
    if (verify_text(t->k, NULL, t->out.p, t->out.len, &st, err,
                    sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }
    assert_int_equal(st.records, 49 + 1 + 5);
    assert_int_equal(st.restarts, 1);
    assert_int_equal(st.last_seq, 55);

    /* garbage lines that end with '\n': no '\n' added, all of it named
       but that last '\n' */
    crash_and_restart(t, 50, 0, "\x01\x02 garbage\n\n{\"seq\":50\n", 1, 0, 0,
                      3);
    if (verify_text(t->k, NULL, t->out.p, t->out.len, &st, err,
                    sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }
    assert_int_equal(st.restarts, 1);
    assert_int_equal(st.last_seq, 53);
    assert_non_null(strstr(t->out.p, "\"bytes\":21,"));

    crash_and_restart(t, 50, 0, "\x01\x02 garbage\n\n{\"seq\":50\n", 1, 0, 1,
                      3);
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the 22 partial bytes");

    /* a whole record without its '\n' is a partial line too: the restart
       record takes its seq */
    crash_and_restart(t, 50, strlen(t->l.v[49]), "", 1, 0, 0, 1);
    if (verify_text(t->k, NULL, t->out.p, t->out.len, &st, err,
                    sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }
    assert_int_equal(st.records, 49 + 1 + 1);
    assert_int_equal(st.restarts, 1);
    assert_int_equal(st.last_seq, 51);

    /* but only with exactly that line's bytes */
    crash_and_restart(t, 50, strlen(t->l.v[49]), "", 1, 1, 0, 1);
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the restart record takes seq 50 again, but");

    /* a crash before the very first record was whole */
    crash_and_restart(t, 1, 40, "", 1, 0, 0, 2);
    if (verify_text(t->k, NULL, t->out.p, t->out.len, &st, err,
                    sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 3);
}


static void
test_crash_forged_restart(void **state)
{
    tamper_t  *t = *state;

    crash_and_restart(t, 50, 100, "", 1, 1, 0, 2);
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the 100 partial bytes the restart record "
                        "names are not the bytes from line 50 on");

    /* one more byte: the '\n' the writer added is not partial */
    crash_and_restart(t, 50, 100, "", 1, 0, 1, 2);
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the 101 partial bytes");

    crash_and_restart(t, 50, 100, "", 1, 0, -1, 2);
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the 99 partial bytes");

    /* the partial line changed after the restart record named it */
    crash_and_restart(t, 50, 100, "", 1, 0, 0, 2);
    strstr(t->out.p, "{\"seq\":50,\"ts")[50] ^= 1;
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the 100 partial bytes");
}


static void
test_crash_restart_removed_partial(void **state)
{
    char       *p, *e;
    tamper_t   *t = *state;

    /* the restart record kept, the partial line it names removed */
    crash_and_restart(t, 50, 100, "", 1, 0, 0, 2);
    p = t->out.p;
    for (e = p; (size_t) (e - p) < t->out.len; e++) {
        if (strncmp(e, "{\"seq\":50,\"ts", 13) == 0) {
            break;
        }
    }
    memmove(e, e + 101, t->out.len - (size_t) (e - p) - 101);
    t->out.len -= 101;
    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 50: the restart record names 100 partial bytes, "
                        "but seq 49 comes right before it");

    /* a restart record first in the files names bytes nobody gave us */
    {
        char                      err[512];
        ag_audit_verify_stats_t   st;

        e = strstr(t->out.p, "{\"seq\":50,");
        assert_int_equal(verify_text(t->k, NULL, e,
                                     t->out.len - (size_t) (e - t->out.p),
                                     &st, err, sizeof(err)), 0);
        assert_int_equal(st.restarts, 1);
        assert_int_equal(st.first_seq, 50);
    }
}


/* --- the verifier: malformed checkpoint and restart records ----------------------------- */

static void
test_special_malformed(void **state)
{
    size_t     i;
    chain_t    c;
    tamper_t  *t = *state;
    static const struct {
        const char  *body;
        const char  *want;
    } cases[] = {
        { "\"event\":\"restart\"",
          "seq 2: a restart record without partial" },
        { "\"event\":\"restart\",\"partial\":{\"offset\":0,\"bytes\":-1,"
          "\"sha256\":\"" ZERO64 "\"}",
          "seq 2: a restart record without partial" },
        { "\"event\":\"restart\",\"partial\":{\"offset\":0,\"bytes\":3,"
          "\"sha256\":\"00\"}",
          "seq 2: a restart record without partial" },
        { "\"event\":\"restart\",\"partial\":{\"offset\":0,\"bytes\":3,"
          "\"sha256\":\"" ZERO64 "\"}",
          "seq 2: the restart record names 3 partial bytes, but seq 1" },
        { "\"event\":\"checkpoint\"",
          "seq 2: a checkpoint record without checkpoint" },
        { "\"event\":\"checkpoint\",\"checkpoint\":{\"seq\":1,\"hash\":\""
          ZERO64 "\"}",
          "seq 2: a checkpoint record without checkpoint" },
        { "\"event\":\"checkpoint\",\"checkpoint\":{\"seq\":2,\"hash\":\""
          ZERO64 "\",\"jws\":\"x\"}",
          "seq 2: the checkpoint names seq 2, which is not an earlier" },
        { "\"event\":\"checkpoint\",\"checkpoint\":{\"seq\":1,\"hash\":\""
          ZERO64 "\",\"jws\":\"x\"}",
          "seq 2: the checkpoint names a hash that is not seq 1's" },
        { "\"event\":\"checkpoint\",\"checkpoint\":{},\"checkpoint\":{}",
          "seq 2: the checkpoint record is not valid JSON" },
        { "\"event\":\"restart\",\"x\":[}",
          "seq 2: the restart record is not valid JSON" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        chain_init(&c, t->k);
        chain_add_call(&c, 1);
        chain_add_body(&c, cases[i].body, strlen(cases[i].body));
        assert_verify_fails(t->k, NULL, c.text.p, c.text.len, cases[i].want);
        chain_free(&c);
    }
}


/* --- checkpoints --------------------------------------------------------------------- */

typedef struct {
    ag_audit_key_t  *k;
    signer_t         gw;
    signer_t         evil;
    chain_t          c;
    lines_t          l;
    ag_buf_t         out;
} cp_t;


/* 100 records, a checkpoint after every 10th: 110 lines, seq 1..110 */
static int
cp_setup(void **state)
{
    int    i;
    cp_t  *t;

    t = calloc(1, sizeof(cp_t));
    t->k = key_new(key1, sizeof(key1));
    signer_new(&t->gw, "ED25519");
    signer_new(&t->evil, "ED25519");

    chain_init(&t->c, t->k);
    for (i = 1; i <= 100; i++) {
        chain_add_call(&t->c, i);
        if (i % 10 == 0) {
            chain_add_checkpoint(&t->c, t->gw.key, t->gw.kid);
        }
    }
    lines_split(&t->l, t->c.text.p, t->c.text.len);

    *state = t;
    return 0;
}


static int
cp_teardown(void **state)
{
    cp_t  *t = *state;

    lines_free(&t->l);
    ag_buf_free(&t->out);
    chain_free(&t->c);
    signer_free(&t->gw);
    signer_free(&t->evil);
    ag_audit_key_free(t->k);
    free(t);
    return 0;
}


static void
test_checkpoint_good(void **state)
{
    cp_t                     *t = *state;
    ag_audit_verify_stats_t   st;

    assert_verify_ok(t->k, t->gw.jwks, t->c.text.p, t->c.text.len, &st);
    assert_int_equal(st.records, 110);
    assert_int_equal(st.checkpoints, 10);
    assert_int_equal(st.last_seq, 110);

    /* without keys the checkpoints are matched to records, not counted */
    assert_verify_ok(t->k, NULL, t->c.text.p, t->c.text.len, &st);
    assert_int_equal(st.records, 110);
    assert_int_equal(st.checkpoints, 0);

    /* another gateway's keys */
    assert_verify_fails(t->k, t->evil.jwks, t->c.text.p, t->c.text.len,
                        "seq 11: the checkpoint's signature does not verify: "
                        "no trusted key has the token's kid");
}


static void
test_checkpoint_mid_chain(void **state)
{
    char                      err[512];
    cp_t                     *t = *state;
    ag_audit_verify_stats_t   st;

    /* a file that starts at seq 11, the checkpoint of seq 10: only its
       signature vouches for it */
    t->l.n = 11;
    t->l.v += 10;
    lines_join(&t->l, &t->out);
    t->l.v -= 10;
    t->l.n = 110;

    assert_int_equal(verify_text(t->k, t->gw.jwks, t->out.p, t->out.len, &st,
                                 err, sizeof(err)), 0);
    assert_int_equal(st.first_seq, 11);
    assert_int_equal(st.checkpoints, 1);

    assert_int_equal(verify_text(t->k, NULL, t->out.p, t->out.len, &st, err,
                                 sizeof(err)), 0);

    /* what it names is under the HMAC too */
    {
        char  *h = strstr(t->out.p, "\"hash\":\"") + 8;

        h[0] = h[0] == '0' ? '1' : '0';
    }
    assert_int_equal(verify_text(t->k, t->gw.jwks, t->out.p, t->out.len, &st,
                                 err, sizeof(err)), -1);
    assert_non_null(strstr(err, "seq 11: hash does not match"));
}


static void
test_checkpoint_rewritten_keep_jws(void **state)
{
    char      *p;
    cp_t      *t = *state;

    /* seq 15 edited, the whole chain re-sealed with the right HMAC key and
       the checkpoints made to name the new hashes: the HMAC chain holds,
       but the JWS of the first checkpoint after the edit signs the old
       hash */
    p = strstr(t->l.v[14], "\"decision\":\"allow\"");
    assert_non_null(p);
    memcpy(p + 12, "deny\" ", 6);
    rewrite(&t->l, 14, t->k, CP_RENAME, NULL, NULL);
    lines_join(&t->l, &t->out);

    assert_verify_ok(t->k, NULL, t->out.p, t->out.len, NULL);
    assert_verify_fails(t->k, t->gw.jwks, t->out.p, t->out.len,
                        "seq 22: the checkpoint's signed seq and hash are not "
                        "the ones it names (the chain was rewritten)");
}


static void
test_checkpoint_rewritten_resigned(void **state)
{
    cp_t  *t = *state;

    /* the whole chain rewritten, every checkpoint signed anew with a key
       that is not the gateway's: the first checkpoint fails */
    rewrite(&t->l, 0, t->k, CP_RESIGN, t->evil.key, t->evil.kid);
    lines_join(&t->l, &t->out);

    assert_verify_ok(t->k, NULL, t->out.p, t->out.len, NULL);
    assert_verify_ok(t->k, t->evil.jwks, t->out.p, t->out.len, NULL);
    assert_verify_fails(t->k, t->gw.jwks, t->out.p, t->out.len,
                        "seq 11: the checkpoint's signature does not verify");

    /* the same, with the gateway's kid claimed by the other key */
    rewrite(&t->l, 0, t->k, CP_RESIGN, t->evil.key, t->gw.kid);
    lines_join(&t->l, &t->out);
    assert_verify_fails(t->k, t->gw.jwks, t->out.p, t->out.len,
                        "seq 11: the checkpoint's signature does not verify: "
                        "token signature does not verify");
}


static void
test_checkpoint_rewritten_stale(void **state)
{
    char  *p;
    cp_t  *t = *state;

    /* the chain rewritten from seq 15 on, the checkpoints copied as they
       were: they name hashes the chain no longer has, which shows even
       without the JWKS */
    p = strstr(t->l.v[14], "\"decision\":\"allow\"");
    assert_non_null(p);
    memcpy(p + 12, "deny\" ", 6);
    rewrite(&t->l, 14, t->k, CP_KEEP, NULL, NULL);
    lines_join(&t->l, &t->out);

    assert_verify_fails(t->k, NULL, t->out.p, t->out.len,
                        "seq 22: the checkpoint names a hash that is not seq "
                        "21's (the chain was rewritten)");
}


static void
test_checkpoint_cut(void **state)
{
    chain_t                   c;
    ag_buf_t                  b;
    cp_t                     *t = *state;
    ag_audit_tail_t           tail;
    ag_audit_verify_stats_t   st;

    /* seq 11, a checkpoint, lost its '\n' in a crash: the restart record
       takes its seq, and it no longer counts */
    t->l.n = 11;
    lines_join(&t->l, &t->out);
    t->l.n = 110;
    t->out.len--;

    tail_of(t->out.p, t->out.len, &tail);
    assert_int_equal(tail.seq, 10);
    assert_int_equal(tail.partial_newline, 1);
    ag_buf_add(&t->out, "\n", 1);

    chain_init(&c, t->k);
    c.seq = tail.seq;
    memcpy(c.hash, tail.hash, AG_AUDIT_HEX);
    memset(&b, 0, sizeof(b));
    ag_audit_restart_body(&tail, &b);
    chain_add_body(&c, b.p, b.len);
    chain_add_call(&c, 11);
    ag_buf_add(&t->out, c.text.p, c.text.len);

    assert_verify_ok(t->k, t->gw.jwks, t->out.p, t->out.len, &st);
    assert_int_equal(st.records, 12);
    assert_int_equal(st.last_seq, 12);
    assert_int_equal(st.checkpoints, 0);
    assert_int_equal(st.restarts, 1);

    ag_buf_free(&b);
    chain_free(&c);
}


static void
test_checkpoint_wrong_typ(void **state)
{
    char      err[256], *tok;
    json_t   *claims;
    chain_t   c;
    ag_buf_t  b;
    cp_t     *t = *state;

    /* a token the gateway's key signed for another purpose */
    chain_init(&c, t->k);
    chain_add_call(&c, 1);

    claims = json_pack("{s:s, s:I, s:s#, s:I}", "iss", ISS, "seq",
                       (json_int_t) 1, "hash", c.hash, (int) AG_AUDIT_HEX,
                       "iat", (json_int_t) 1795428000);
    assert_int_equal(ag_jwt_sign(t->gw.key, t->gw.kid, "JWT", claims, &tok,
                                 err, sizeof(err)), 0);
    json_decref(claims);

    memset(&b, 0, sizeof(b));
    ag_buf_str(&b, "\"event\":\"checkpoint\",\"checkpoint\":{\"seq\":1,"
               "\"hash\":\"");
    ag_buf_add(&b, c.hash, AG_AUDIT_HEX);
    ag_buf_str(&b, "\",\"jws\":\"");
    ag_buf_str(&b, tok);
    ag_buf_str(&b, "\"}");
    chain_add_body(&c, b.p, b.len);

    assert_verify_ok(t->k, NULL, c.text.p, c.text.len, NULL);
    assert_verify_fails(t->k, t->gw.jwks, c.text.p, c.text.len,
                        "seq 2: the checkpoint's signature does not verify: "
                        "token typ is not agentgov-checkpoint+jwt");

    free(tok);
    ag_buf_free(&b);
    chain_free(&c);
}


static void
test_checkpoint_out_of_ring(void **state)
{
    int                   i;
    char                  err[512], h1[AG_AUDIT_HEX], hold[AG_AUDIT_HEX];
    chain_t               c;
    ag_buf_t              b;
    cp_t                 *t = *state;
    ag_audit_verifier_t  *v;

    /* 70,000 records fed as they are made, then checkpoints of the oldest
       record still kept (70001 - 65536 = 4465) and of seq 1 */
    v = ag_audit_verifier_new(t->k, t->gw.jwks);
    chain_init(&c, t->k);

    for (i = 1; i <= 70000; i++) {
        ag_buf_reset(&c.text);
        chain_add_body(&c, "\"event\":\"call\"", 14);
        if (i == 1) {
            memcpy(h1, c.hash, AG_AUDIT_HEX);
        }
        if (i == 4465) {
            memcpy(hold, c.hash, AG_AUDIT_HEX);
        }
        if (ag_audit_verify_line(v, c.text.p, c.text.len - 1, 1, err,
                                 sizeof(err)) != 0)
        {
            fail_msg("%s", err);
        }
    }

    memset(&b, 0, sizeof(b));
    assert_int_equal(ag_audit_checkpoint_body(t->gw.key, t->gw.kid, ISS, 4465,
                                              hold, 1795428000, &b, err,
                                              sizeof(err)), 0);
    ag_buf_reset(&c.text);
    chain_add_body(&c, b.p, b.len);
    if (ag_audit_verify_line(v, c.text.p, c.text.len - 1, 1, err,
                             sizeof(err)) != 0)
    {
        fail_msg("%s", err);
    }

    ag_buf_reset(&b);
    assert_int_equal(ag_audit_checkpoint_body(t->gw.key, t->gw.kid, ISS, 1,
                                              h1, 1795428000, &b, err,
                                              sizeof(err)), 0);
    ag_buf_reset(&c.text);
    chain_add_body(&c, b.p, b.len);
    assert_int_equal(ag_audit_verify_line(v, c.text.p, c.text.len - 1, 1, err,
                                          sizeof(err)), -1);
    assert_non_null(strstr(err, "seq 70002: the checkpoint names seq 1, more "
                           "than 65536 records back"));

    ag_buf_free(&b);
    chain_free(&c);
    ag_audit_verifier_free(v);
}


/* --- ag_jws_verify_jwks ----------------------------------------------------------------- */

static void
test_jws_verify_jwks(void **state)
{
    char              err[256], *tok;
    json_t           *claims, *payload;
    signer_t          ec;
    cp_t             *t = *state;

    claims = json_pack("{s:s, s:I}", "iss", ISS, "seq", (json_int_t) 7);

    /* good: the payload comes back */
    assert_int_equal(ag_jwt_sign(t->gw.key, t->gw.kid,
                                 AG_AUDIT_CHECKPOINT_TYP, claims, &tok, err,
                                 sizeof(err)), 0);
    payload = NULL;
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                        AG_AUDIT_CHECKPOINT_TYP, &payload, err,
                                        sizeof(err)), AG_JWT_OK);
    assert_int_equal(json_integer_value(json_object_get(payload, "seq")), 7);
    json_decref(payload);

    /* the typ compares as a media type */
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                        "Agentgov-Checkpoint+JWT", NULL, err,
                                        sizeof(err)), AG_JWT_OK);

    /* another typ, the other key, a changed payload, a cut token */
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                        "agentgov-task+jwt", &payload, err,
                                        sizeof(err)), AG_JWT_BAD_HEADER);
    assert_null(payload);
    assert_int_equal(ag_jws_verify_jwks(t->evil.jwks, tok, strlen(tok),
                                        AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                        sizeof(err)), AG_JWT_UNTRUSTED);
    {
        char  *dot = strchr(tok, '.') + 1;

        dot[3] = dot[3] == 'A' ? 'B' : 'A';
        assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                            AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                            sizeof(err)),
                         AG_JWT_BAD_SIGNATURE);
        dot[3] = dot[3] == 'A' ? 'B' : 'A';
    }
    assert_int_not_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok) - 4,
                                            AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                            sizeof(err)), AG_JWT_OK);
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, "a.b", 3,
                                        AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                        sizeof(err)), AG_JWT_MALFORMED);
    free(tok);

    /* no typ at all */
    assert_int_equal(ag_jwt_sign(t->gw.key, t->gw.kid, NULL, claims, &tok,
                                 err, sizeof(err)), 0);
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                        AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                        sizeof(err)), AG_JWT_BAD_HEADER);
    free(tok);

    /* no kid: the one key of the JWKS that fits the alg */
    assert_int_equal(ag_jwt_sign(t->gw.key, NULL, AG_AUDIT_CHECKPOINT_TYP,
                                 claims, &tok, err, sizeof(err)), 0);
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                        AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                        sizeof(err)), AG_JWT_OK);
    free(tok);

    /* ES256 from a P-256 gateway key */
    signer_new(&ec, "EC");
    assert_int_equal(ag_jwt_sign(ec.key, ec.kid, AG_AUDIT_CHECKPOINT_TYP,
                                 claims, &tok, err, sizeof(err)), 0);
    assert_int_equal(ag_jws_verify_jwks(ec.jwks, tok, strlen(tok),
                                        AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                        sizeof(err)), AG_JWT_OK);
    assert_int_equal(ag_jws_verify_jwks(t->gw.jwks, tok, strlen(tok),
                                        AG_AUDIT_CHECKPOINT_TYP, NULL, err,
                                        sizeof(err)), AG_JWT_UNTRUSTED);
    free(tok);
    signer_free(&ec);

    json_decref(claims);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_json_str_invalid_utf8),
        cmocka_unit_test(test_ts),
        cmocka_unit_test(test_ts_libc),
        cmocka_unit_test(test_hmac_vectors),
        cmocka_unit_test(test_key_limits),
        cmocka_unit_test(test_seal_vector),
        cmocka_unit_test(test_seal_parse_round_trip),
        cmocka_unit_test(test_line_parse_rejects),
        cmocka_unit_test(test_tail),
        cmocka_unit_test(test_verify_good),
        cmocka_unit_test(test_verify_files),
        cmocka_unit_test_setup_teardown(test_tamper_edit, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit_seq, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_last, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_swap, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_insert_copy, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_insert_forged,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_insert_garbage,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_prev, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_first_prev, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_after_failure,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_crash_cut_without_restart,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_crash_restart, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_crash_forged_restart,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_crash_restart_removed_partial,
                                        tamper_setup, tamper_teardown),
        cmocka_unit_test_setup_teardown(test_special_malformed, tamper_setup,
                                        tamper_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_good, cp_setup,
                                        cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_mid_chain, cp_setup,
                                        cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_rewritten_keep_jws,
                                        cp_setup, cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_rewritten_resigned,
                                        cp_setup, cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_rewritten_stale,
                                        cp_setup, cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_cut, cp_setup,
                                        cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_wrong_typ, cp_setup,
                                        cp_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_out_of_ring, cp_setup,
                                        cp_teardown),
        cmocka_unit_test_setup_teardown(test_jws_verify_jwks, cp_setup,
                                        cp_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
