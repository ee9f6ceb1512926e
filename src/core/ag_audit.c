/*
 * The audit chain: the buffer records are written into, the HMAC key,
 * record encoding and sealing, the fixed parts of a line, the end of a file,
 * and checkpoint records (SPEC section 8). Verification is in
 * ag_audit_verify.c, reading backwards in ag_audit_read.c.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ag_audit.h"
#include "ag_util.h"


#define AG_AUDIT_SHA256_BLOCK   64
#define AG_AUDIT_TAIL_CHUNK     65536


/* the fixed first and last members of every line */
#define AG_AUDIT_SEQ_OPEN    "{\"seq\":"
#define AG_AUDIT_TS_OPEN     ",\"ts\":\""
#define AG_AUDIT_EVENT_OPEN  "\",\"event\":\""
#define AG_AUDIT_PREV_OPEN   ",\"prev\":\""
#define AG_AUDIT_HASH_OPEN   ",\"hash\":\""
#define AG_AUDIT_CLOSE       "\"}"

#define ag_lit_len(s)        (sizeof(s) - 1)


/* --- buffer ------------------------------------------------------------------ */

static int
ag_buf_grow(ag_buf_t *b, size_t more)
{
    char    *p;
    size_t   cap;

    if (b->failed) {
        return -1;
    }

    if (b->cap - b->len >= more) {
        return 0;
    }

    cap = b->cap ? b->cap : 512;

    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }

        cap *= 2;
    }

    p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }

    b->p = p;
    b->cap = cap;

    return 0;
}


void
ag_buf_reset(ag_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
}


void
ag_buf_free(ag_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}


void
ag_buf_add(ag_buf_t *b, const void *data, size_t len)
{
    if (len == 0 || ag_buf_grow(b, len) != 0) {
        return;
    }

    memcpy(b->p + b->len, data, len);
    b->len += len;
}


void
ag_buf_str(ag_buf_t *b, const char *s)
{
    ag_buf_add(b, s, strlen(s));
}


void
ag_buf_u64(ag_buf_t *b, uint64_t v)
{
    char  num[24], *p;

    /* by hand: several per record, and snprintf() is slow at it */
    p = num + sizeof(num);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    ag_buf_add(b, p, (size_t) (num + sizeof(num) - p));
}


/* bytes a JSON string holds as they are: printable ASCII but '"' and '\\' */
static const unsigned char  ag_json_plain[256] = {
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0
};


void
ag_buf_json_str(ag_buf_t *b, const char *s, size_t len)
{
    char                  esc[8];
    size_t                i, n, run;
    const unsigned char  *u;

    u = (const unsigned char *) s;

    ag_buf_add(b, "\"", 1);

    i = 0;
    while (i < len) {

        /* the longest run that needs no escaping, in one copy */
        run = i;
        while (run < len && ag_json_plain[u[run]]) {
            run++;
        }

        if (run > i) {
            ag_buf_add(b, s + i, run - i);
            i = run;
            continue;
        }

        switch (u[i]) {
        case '"':  ag_buf_add(b, "\\\"", 2); i++; continue;
        case '\\': ag_buf_add(b, "\\\\", 2); i++; continue;
        case '\n': ag_buf_add(b, "\\n", 2); i++; continue;
        case '\r': ag_buf_add(b, "\\r", 2); i++; continue;
        case '\t': ag_buf_add(b, "\\t", 2); i++; continue;
        }

        if (u[i] < 0x20 || u[i] == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            ag_buf_add(b, esc, 6);
            i++;
            continue;
        }

        n = ag_utf8_len(u + i, len - i);
        if (n == 0) {
            ag_buf_add(b, "\\ufffd", 6);
            i++;
            continue;
        }

        ag_buf_add(b, s + i, n);
        i += n;
    }

    ag_buf_add(b, "\"", 1);
}


/* --- key ------------------------------------------------------------------- */

/* The SHA-256 states after the key's inner and outer pads (RFC 2104), so
   that a record costs its own blocks only. */
struct ag_audit_key_s {
    EVP_MD_CTX  *inner;
    EVP_MD_CTX  *outer;
    EVP_MD_CTX  *work;       /* reused by each HMAC: one thread per key */
};


ag_audit_key_t *
ag_audit_key_new(const unsigned char *key, size_t len, char *err,
    size_t errlen)
{
    size_t           i;
    unsigned int     mdlen;
    unsigned char    k[AG_AUDIT_SHA256_BLOCK], pad[AG_AUDIT_SHA256_BLOCK];
    ag_audit_key_t  *ak;

    if (len < AG_AUDIT_KEY_MIN || len > AG_AUDIT_KEY_MAX) {
        ag_errf(err, errlen, "the audit key must be %d to %d bytes, not %zu",
                AG_AUDIT_KEY_MIN, AG_AUDIT_KEY_MAX, len);
        return NULL;
    }

    memset(k, 0, sizeof(k));

    if (len > AG_AUDIT_SHA256_BLOCK) {
        if (EVP_Digest(key, len, k, &mdlen, EVP_sha256(), NULL) != 1) {
            ag_errf(err, errlen, "SHA-256 failed");
            return NULL;
        }

    } else {
        memcpy(k, key, len);
    }

    ak = calloc(1, sizeof(ag_audit_key_t));
    if (ak == NULL) {
        ag_errf(err, errlen, "out of memory");
        OPENSSL_cleanse(k, sizeof(k));
        return NULL;
    }

    ak->inner = EVP_MD_CTX_new();
    ak->outer = EVP_MD_CTX_new();
    ak->work = EVP_MD_CTX_new();

    if (ak->inner == NULL || ak->outer == NULL || ak->work == NULL) {
        goto failed;
    }

    for (i = 0; i < sizeof(pad); i++) {
        pad[i] = k[i] ^ 0x36;
    }

    if (EVP_DigestInit_ex(ak->inner, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(ak->inner, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    for (i = 0; i < sizeof(pad); i++) {
        pad[i] = k[i] ^ 0x5c;
    }

    if (EVP_DigestInit_ex(ak->outer, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(ak->outer, pad, sizeof(pad)) != 1)
    {
        goto failed;
    }

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));

    return ak;

failed:

    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    ag_audit_key_free(ak);
    ag_errf(err, errlen, "cannot set up HMAC-SHA256");

    return NULL;
}


ag_audit_key_t *
ag_audit_key_load(const char *path, char *err, size_t errlen)
{
    char            *data, e[256];
    size_t           len;
    ag_audit_key_t  *k;

    data = ag_read_file(path, AG_AUDIT_KEY_MAX, &len, e, sizeof(e));
    if (data == NULL) {
        ag_errf(err, errlen, "%s", e);
        return NULL;
    }

    k = ag_audit_key_new((const unsigned char *) data, len, e, sizeof(e));

    OPENSSL_cleanse(data, len);
    free(data);

    if (k == NULL) {
        ag_errf(err, errlen, "%s: %s", path, e);
    }

    return k;
}


void
ag_audit_key_free(ag_audit_key_t *k)
{
    if (k == NULL) {
        return;
    }

    EVP_MD_CTX_free(k->inner);
    EVP_MD_CTX_free(k->outer);
    EVP_MD_CTX_free(k->work);
    free(k);
}


int
ag_audit_hmac(const ag_audit_key_t *k, const void *data, size_t len,
    char hex[AG_AUDIT_HEX])
{
    unsigned int   n;
    unsigned char  md[32];
    EVP_MD_CTX    *c;

    c = k->work;

    if (EVP_MD_CTX_copy_ex(c, k->inner) != 1
        || EVP_DigestUpdate(c, data, len) != 1
        || EVP_DigestFinal_ex(c, md, &n) != 1
        || EVP_MD_CTX_copy_ex(c, k->outer) != 1
        || EVP_DigestUpdate(c, md, sizeof(md)) != 1
        || EVP_DigestFinal_ex(c, md, &n) != 1)
    {
        return -1;
    }

    ag_hex_encode(md, sizeof(md), hex);

    return 0;
}


/* --- records ----------------------------------------------------------------- */

static void
ag_audit_list(ag_buf_t *b, const char *name, const ag_str_t *v, size_t n)
{
    size_t  i;

    if (n == 0) {
        return;
    }

    ag_buf_add(b, ",\"", 2);
    ag_buf_str(b, name);
    ag_buf_add(b, "\":[", 3);

    for (i = 0; i < n; i++) {
        if (i) {
            ag_buf_add(b, ",", 1);
        }

        ag_buf_json_str(b, v[i].p, v[i].len);
    }

    ag_buf_add(b, "]", 1);
}


void
ag_audit_body(const ag_audit_rec_t *rec, ag_buf_t *out)
{
    size_t    i;
    ag_str_t  event;

    event.p = rec->event;
    event.len = rec->event ? strlen(rec->event) : 0;

    ag_buf_str(out, "\"event\":");
    ag_buf_json_str(out, event.p, event.len);

#define ag_member(name, v)                                                    \
    if ((v).len) {                                                            \
        ag_buf_str(out, ",\"" name "\":");                                    \
        ag_buf_json_str(out, (v).p, (v).len);                                 \
    }

    ag_member("request_id", rec->request_id);
    ag_member("agent", rec->agent);
    ag_member("owner", rec->owner);
    ag_member("task", rec->task);
    ag_member("intent", rec->intent);
    ag_member("chain", rec->chain);
    ag_member("tool", rec->tool);

    if (rec->method.len || rec->path.len) {
        ag_buf_str(out, ",\"action\":{\"method\":");
        ag_buf_json_str(out, rec->method.p, rec->method.len);
        ag_buf_str(out, ",\"host\":");
        ag_buf_json_str(out, rec->host.p, rec->host.len);
        ag_buf_str(out, ",\"path\":");
        ag_buf_json_str(out, rec->path.p, rec->path.len);
        ag_buf_add(out, "}", 1);

    } else if (rec->mcp_method.len) {
        ag_buf_str(out, ",\"action\":{\"mcp_method\":");
        ag_buf_json_str(out, rec->mcp_method.p, rec->mcp_method.len);
        if (rec->mcp_tool.len) {
            ag_buf_str(out, ",\"mcp_tool\":");
            ag_buf_json_str(out, rec->mcp_tool.p, rec->mcp_tool.len);
        }
        if (rec->mcp_resource.len) {
            ag_buf_str(out, ",\"mcp_resource\":");
            ag_buf_json_str(out, rec->mcp_resource.p, rec->mcp_resource.len);
        }
        if (rec->mcp_prompt.len) {
            ag_buf_str(out, ",\"mcp_prompt\":");
            ag_buf_json_str(out, rec->mcp_prompt.p, rec->mcp_prompt.len);
        }
        ag_buf_add(out, "}", 1);
    }

    ag_member("op", rec->op);
    ag_member("by", rec->by);
    ag_member("args_sha256", rec->args_sha256);
    ag_member("decision", rec->decision);
    ag_member("rule", rec->rule);
    ag_member("reason", rec->reason);
    ag_member("error", rec->error);

#undef ag_member

    if (rec->ntags) {
        ag_buf_str(out, ",\"tags\":[");
        for (i = 0; i < rec->ntags; i++) {
            if (i) {
                ag_buf_add(out, ",", 1);
            }
            ag_buf_json_str(out, rec->tags[i], strlen(rec->tags[i]));
        }
        ag_buf_add(out, "]", 1);
    }

    if (rec->approval_id.len) {
        ag_buf_str(out, ",\"approval\":{\"id\":");
        ag_buf_json_str(out, rec->approval_id.p, rec->approval_id.len);

        if (rec->approver.len) {
            ag_buf_str(out, ",\"approver\":");
            ag_buf_json_str(out, rec->approver.p, rec->approver.len);
        }

        if (rec->decided_at > 0) {
            char  ts[AG_AUDIT_TS_LEN + 1];

            ag_audit_ts(rec->decided_at * 1000000, ts);
            ag_buf_str(out, ",\"decided_at\":");
            ag_buf_json_str(out, ts, AG_AUDIT_TS_LEN);
        }

        if (rec->approval_reason.len) {
            ag_buf_str(out, ",\"reason\":");
            ag_buf_json_str(out, rec->approval_reason.p,
                            rec->approval_reason.len);
        }

        ag_buf_add(out, "}", 1);
    }

    if (rec->cred_type) {
        ag_buf_str(out, ",\"credential\":{\"type\":");
        ag_buf_json_str(out, rec->cred_type, strlen(rec->cred_type));

        if (rec->cred_kid) {
            ag_buf_str(out, ",\"kid\":");
            ag_buf_json_str(out, rec->cred_kid, strlen(rec->cred_kid));
        }

        if (rec->cred_jti.len) {
            ag_buf_str(out, ",\"jti\":");
            ag_buf_json_str(out, rec->cred_jti.p, rec->cred_jti.len);
            ag_buf_str(out, ",\"exp\":");
            ag_buf_u64(out, (uint64_t) rec->cred_exp);
        }

        ag_buf_add(out, "}", 1);
    }

    ag_audit_list(out, "stripped", rec->stripped, rec->nstripped);
    ag_audit_list(out, "findings", rec->findings, rec->nfindings);

    if (rec->status > 0) {
        ag_buf_str(out, ",\"status\":");
        ag_buf_u64(out, (uint64_t) rec->status);
    }

    if (rec->latency_us >= 0) {
        ag_buf_str(out, ",\"latency_us\":");
        ag_buf_u64(out, (uint64_t) rec->latency_us);
    }

    if (rec->extra && rec->extra[0]) {
        ag_buf_add(out, ",", 1);
        ag_buf_str(out, rec->extra);
    }
}


static void
ag_audit_digits(char *out, int v, int n)
{
    while (n--) {
        out[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


/* UTC calendar fields of t >= 0 (days to civil date: H. Hinnant's method) */
static void
ag_audit_civil(time_t t, struct tm *tm)
{
    int64_t  days, secs, z, era, doe, yoe, y, doy, mp, d, m;

    days = (int64_t) t / 86400;
    secs = (int64_t) t % 86400;

    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;

    tm->tm_year = (int) (y + (m <= 2) - 1900);
    tm->tm_mon = (int) m - 1;
    tm->tm_mday = (int) d;
    tm->tm_hour = (int) (secs / 3600);
    tm->tm_min = (int) (secs / 60 % 60);
    tm->tm_sec = (int) (secs % 60);
}


void
ag_audit_ts(int64_t us, char out[AG_AUDIT_TS_LEN + 1])
{
    int        i;
    time_t     t;
    struct tm  tm;
    int64_t    frac;

    if (us < 0) {
        us = 0;
    }

    /* 9999-12-31T23:59:59.999999Z at most, so the text keeps its length */
    if (us > INT64_C(253402300799999999)) {
        us = INT64_C(253402300799999999);
    }

    t = (time_t) (us / 1000000);
    frac = us % 1000000;

    /* by hand: every record has one, and strftime() costs more than the
       rest of the record's header */
    ag_audit_civil(t, &tm);

    ag_audit_digits(out, tm.tm_year + 1900, 4);
    out[4] = '-';
    ag_audit_digits(out + 5, tm.tm_mon + 1, 2);
    out[7] = '-';
    ag_audit_digits(out + 8, tm.tm_mday, 2);
    out[10] = 'T';
    ag_audit_digits(out + 11, tm.tm_hour, 2);
    out[13] = ':';
    ag_audit_digits(out + 14, tm.tm_min, 2);
    out[16] = ':';
    ag_audit_digits(out + 17, tm.tm_sec, 2);
    out[19] = '.';

    for (i = 25; i >= 20; i--) {
        out[i] = (char) ('0' + frac % 10);
        frac /= 10;
    }

    out[26] = 'Z';
    out[27] = '\0';
}


int
ag_audit_seal(const ag_audit_key_t *k, uint64_t seq, int64_t ts_us,
    const char *body, size_t bodylen, const char prev[AG_AUDIT_HEX],
    ag_buf_t *out, char hash[AG_AUDIT_HEX])
{
    char    ts[AG_AUDIT_TS_LEN + 1];
    size_t  start;

    start = out->len;

    ag_audit_ts(ts_us, ts);

    ag_buf_add(out, AG_AUDIT_SEQ_OPEN, ag_lit_len(AG_AUDIT_SEQ_OPEN));
    ag_buf_u64(out, seq);
    ag_buf_add(out, AG_AUDIT_TS_OPEN, ag_lit_len(AG_AUDIT_TS_OPEN));
    ag_buf_add(out, ts, AG_AUDIT_TS_LEN);
    ag_buf_add(out, "\",", 2);
    ag_buf_add(out, body, bodylen);
    ag_buf_add(out, AG_AUDIT_PREV_OPEN, ag_lit_len(AG_AUDIT_PREV_OPEN));
    ag_buf_add(out, prev, AG_AUDIT_HEX);
    ag_buf_add(out, "\"", 1);

    if (out->failed
        || ag_audit_hmac(k, out->p + start, out->len - start, hash) != 0)
    {
        out->len = start;
        return -1;
    }

    ag_buf_add(out, AG_AUDIT_HASH_OPEN, ag_lit_len(AG_AUDIT_HASH_OPEN));
    ag_buf_add(out, hash, AG_AUDIT_HEX);
    ag_buf_add(out, AG_AUDIT_CLOSE "\n", ag_lit_len(AG_AUDIT_CLOSE) + 1);

    if (out->failed) {
        out->len = start;
        return -1;
    }

    return 0;
}


/* --- lines ------------------------------------------------------------------- */

/*
 * Without a branch per digit: on random hex, "digit or letter?" is a coin
 * toss the branch predictor loses half the time, and with two hashes a line
 * that cost as much as the record's HMAC when verifying.
 */
static const unsigned char  ag_hex_lower[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1
};


static int
ag_is_hex(const char *p, size_t n)
{
    size_t    i;
    unsigned  all;

    all = 1;

    for (i = 0; i < n; i++) {
        all &= ag_hex_lower[(unsigned char) p[i]];
    }

    return all;
}


int
ag_audit_line_parse(const char *line, size_t len, ag_audit_line_t *out,
    char *err, size_t errlen)
{
    const char  *p, *last, *tail;
    uint64_t     seq;
    size_t       digits, fixed;

    memset(out, 0, sizeof(ag_audit_line_t));

    p = line;
    last = line + len;

    fixed = ag_lit_len(AG_AUDIT_PREV_OPEN) + AG_AUDIT_HEX + 1
            + ag_lit_len(AG_AUDIT_HASH_OPEN) + AG_AUDIT_HEX
            + ag_lit_len(AG_AUDIT_CLOSE);

    if (len < ag_lit_len(AG_AUDIT_SEQ_OPEN) + 1 + ag_lit_len(AG_AUDIT_TS_OPEN)
              + AG_AUDIT_TS_LEN + ag_lit_len(AG_AUDIT_EVENT_OPEN) + 1 + fixed
        || memcmp(p, AG_AUDIT_SEQ_OPEN, ag_lit_len(AG_AUDIT_SEQ_OPEN)) != 0)
    {
        ag_errf(err, errlen, "not an audit record");
        return -1;
    }

    p += ag_lit_len(AG_AUDIT_SEQ_OPEN);

    seq = 0;
    digits = 0;

    while (p < last && *p >= '0' && *p <= '9') {
        if (digits == 19 || (digits == 1 && seq == 0)) {
            ag_errf(err, errlen, "seq is not a number from 1");
            return -1;
        }

        seq = seq * 10 + (uint64_t) (*p - '0');
        digits++;
        p++;
    }

    if (digits == 0 || seq == 0) {
        ag_errf(err, errlen, "seq is not a number from 1");
        return -1;
    }

    if ((size_t) (last - p) < ag_lit_len(AG_AUDIT_TS_OPEN) + AG_AUDIT_TS_LEN
                              + ag_lit_len(AG_AUDIT_EVENT_OPEN) + fixed
        || memcmp(p, AG_AUDIT_TS_OPEN, ag_lit_len(AG_AUDIT_TS_OPEN)) != 0)
    {
        ag_errf(err, errlen, "no ts after seq");
        return -1;
    }

    p += ag_lit_len(AG_AUDIT_TS_OPEN);
    out->ts.p = p;
    out->ts.len = AG_AUDIT_TS_LEN;
    p += AG_AUDIT_TS_LEN;

    if (out->ts.p[AG_AUDIT_TS_LEN - 1] != 'Z'
        || memcmp(p, AG_AUDIT_EVENT_OPEN, ag_lit_len(AG_AUDIT_EVENT_OPEN))
           != 0)
    {
        ag_errf(err, errlen, "no event after ts");
        return -1;
    }

    p += ag_lit_len(AG_AUDIT_EVENT_OPEN);
    tail = last - fixed;

    out->event.p = p;
    while (p < tail && *p >= 'a' && *p <= 'z') {
        p++;
    }

    out->event.len = p - out->event.p;

    if (out->event.len == 0 || p >= tail || *p != '"') {
        ag_errf(err, errlen, "event is not a name");
        return -1;
    }

    /* the end: ,"prev":"<hex>","hash":"<hex>"} */

    p = tail;

    if (memcmp(p, AG_AUDIT_PREV_OPEN, ag_lit_len(AG_AUDIT_PREV_OPEN)) != 0) {
        ag_errf(err, errlen, "prev is not the last member but hash");
        return -1;
    }

    p += ag_lit_len(AG_AUDIT_PREV_OPEN);

    if (!ag_is_hex(p, AG_AUDIT_HEX) || p[AG_AUDIT_HEX] != '"') {
        ag_errf(err, errlen, "prev is not 64 lower-case hex digits");
        return -1;
    }

    memcpy(out->prev, p, AG_AUDIT_HEX);
    p += AG_AUDIT_HEX + 1;
    out->signed_len = p - line;

    if (memcmp(p, AG_AUDIT_HASH_OPEN, ag_lit_len(AG_AUDIT_HASH_OPEN)) != 0) {
        ag_errf(err, errlen, "hash is not the last member");
        return -1;
    }

    p += ag_lit_len(AG_AUDIT_HASH_OPEN);

    if (!ag_is_hex(p, AG_AUDIT_HEX)
        || memcmp(p + AG_AUDIT_HEX, AG_AUDIT_CLOSE, ag_lit_len(AG_AUDIT_CLOSE))
           != 0)
    {
        ag_errf(err, errlen, "hash is not 64 lower-case hex digits");
        return -1;
    }

    memcpy(out->hash, p, AG_AUDIT_HEX);
    out->seq = seq;

    return 0;
}


/* --- the end of a file ------------------------------------------------------- */

/* SHA-256 of the bytes [off, off + len) of fd, in hex. */

static int
ag_file_sha256(int fd, off_t off, off_t len, char hex[AG_AUDIT_HEX])
{
    int            rc;
    char          *buf;
    size_t         n;
    unsigned int   mdlen;
    unsigned char  md[32];
    EVP_MD_CTX    *c;

    buf = malloc(AG_AUDIT_TAIL_CHUNK);
    c = EVP_MD_CTX_new();
    rc = -1;

    if (buf == NULL || c == NULL
        || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
    {
        goto done;
    }

    while (len > 0) {
        n = len > AG_AUDIT_TAIL_CHUNK ? AG_AUDIT_TAIL_CHUNK : (size_t) len;

        if (ag_pread_all(fd, buf, n, off) != 0
            || EVP_DigestUpdate(c, buf, n) != 1)
        {
            goto done;
        }

        off += (off_t) n;
        len -= (off_t) n;
    }

    if (EVP_DigestFinal_ex(c, md, &mdlen) == 1) {
        ag_hex_encode(md, sizeof(md), hex);
        rc = 0;
    }

done:

    free(buf);
    EVP_MD_CTX_free(c);

    return rc;
}


/* The offset just after the last '\n' before `e`, or 0. */

static int
ag_line_start(int fd, char *buf, off_t e, off_t *s)
{
    off_t   pos, from;
    size_t  n;

    pos = e;

    while (pos > 0) {
        from = pos > AG_AUDIT_TAIL_CHUNK ? pos - AG_AUDIT_TAIL_CHUNK : 0;
        n = (size_t) (pos - from);

        if (ag_pread_all(fd, buf, n, from) != 0) {
            return -1;
        }

        while (n > 0) {
            if (buf[n - 1] == '\n') {
                *s = from + (off_t) n;
                return 0;
            }
            n--;
        }

        pos = from;
    }

    *s = 0;

    return 0;
}


int
ag_audit_tail(int fd, ag_audit_tail_t *t, char *err, size_t errlen)
{
    int               terminated, last_nl;
    char             *buf, e[128];
    off_t             size, end, s, le;
    ag_audit_line_t   l;

    memset(t, 0, sizeof(ag_audit_tail_t));

    size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        ag_errf(err, errlen, "cannot find the end of the audit file: %s",
                strerror(errno));
        return -1;
    }

    t->size = size;

    if (size == 0) {
        return 0;
    }

    buf = malloc(AG_AUDIT_LINE_MAX > AG_AUDIT_TAIL_CHUNK
                 ? AG_AUDIT_LINE_MAX : AG_AUDIT_TAIL_CHUNK);
    if (buf == NULL) {
        ag_errf(err, errlen, "out of memory");
        return -1;
    }

    /*
     * From the last line backwards: the first line that ends with '\n' and
     * is a record is the last whole record; every byte after it is the
     * partial part a crash left.
     */

    if (ag_pread_all(fd, buf, 1, size - 1) != 0) {
        goto failed;
    }

    terminated = (buf[0] == '\n');
    last_nl = terminated;
    le = terminated ? size - 1 : size;
    end = 0;

    for ( ;; ) {
        if (ag_line_start(fd, buf, le, &s) != 0) {
            goto failed;
        }

        if (terminated && le > s && le - s <= AG_AUDIT_LINE_MAX) {
            if (ag_pread_all(fd, buf, (size_t) (le - s), s) != 0) {
                goto failed;
            }

            if (ag_audit_line_parse(buf, (size_t) (le - s), &l, e, sizeof(e))
                == 0)
            {
                t->found = 1;
                t->seq = l.seq;
                memcpy(t->hash, l.hash, AG_AUDIT_HEX);
                end = le + 1;
                break;
            }
        }

        if (s == 0) {
            break;
        }

        le = s - 1;
        terminated = 1;
    }

    free(buf);

    if (end < size) {
        t->partial = 1;
        t->partial_offset = end;
        t->partial_len = size - end;
        t->partial_newline = !last_nl;

        if (last_nl) {
            t->partial_len--;
        }

        if (ag_file_sha256(fd, end, t->partial_len, t->partial_sha256) != 0) {
            ag_errf(err, errlen, "cannot read the audit file: %s",
                    strerror(errno));
            return -1;
        }
    }

    return 0;

failed:

    ag_errf(err, errlen, "cannot read the audit file: %s", strerror(errno));
    free(buf);

    return -1;
}


void
ag_audit_restart_body(const ag_audit_tail_t *t, ag_buf_t *out)
{
    char  reason[160];

    ag_buf_str(out, "\"event\":\"restart\",\"reason\":");

    snprintf(reason, sizeof(reason), "the last record was cut short: "
             "%lld bytes after seq %llu are not a whole record",
             (long long) t->partial_len, (unsigned long long) t->seq);
    ag_buf_json_str(out, reason, strlen(reason));

    ag_buf_str(out, ",\"partial\":{\"offset\":");
    ag_buf_u64(out, (uint64_t) t->partial_offset);
    ag_buf_str(out, ",\"bytes\":");
    ag_buf_u64(out, (uint64_t) t->partial_len);
    ag_buf_str(out, ",\"sha256\":\"");
    ag_buf_add(out, t->partial_sha256, AG_AUDIT_HEX);
    ag_buf_str(out, "\"}");
}


int
ag_audit_checkpoint_body(EVP_PKEY *key, const char *kid, const char *iss,
    uint64_t seq, const char hash[AG_AUDIT_HEX], int64_t now, ag_buf_t *out,
    char *err, size_t errlen)
{
    int      rc;
    char    *jws;
    json_t  *claims;

    claims = json_pack("{s:s, s:I, s:s#, s:I}", "iss", iss, "seq",
                       (json_int_t) seq, "hash", hash, (int) AG_AUDIT_HEX,
                       "iat", (json_int_t) now);
    if (claims == NULL) {
        ag_errf(err, errlen, "out of memory");
        return -1;
    }

    rc = ag_jwt_sign(key, kid, AG_AUDIT_CHECKPOINT_TYP, claims, &jws, err,
                     errlen);
    json_decref(claims);

    if (rc != 0) {
        return -1;
    }

    ag_buf_str(out, "\"event\":\"checkpoint\",\"checkpoint\":{\"seq\":");
    ag_buf_u64(out, seq);
    ag_buf_str(out, ",\"hash\":\"");
    ag_buf_add(out, hash, AG_AUDIT_HEX);
    ag_buf_str(out, "\",\"jws\":");
    ag_buf_json_str(out, jws, strlen(jws));
    ag_buf_add(out, "}", 1);

    free(jws);

    if (out->failed) {
        ag_errf(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}
