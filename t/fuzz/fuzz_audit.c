/*
 * The audit chain verifier and the line form: ag_audit_verify_line on every
 * line of the input, ag_audit_line_parse on each, ag_audit_verify_end.
 * Raw bytes almost never carry a valid HMAC, so the structured mode seals
 * the fuzzer's lines with the fixture's key, and writes the restart and
 * checkpoint records that only a key holder could, so that the checks
 * behind the HMAC are fuzzed too.
 *
 * Input: the first byte picks the mode, the rest is lines ('\n'; a last
 * line without one is fed as cut short):
 *   'r' / 'R'   raw lines, verified with / without the JWKS
 *   's' / 'S'   structured lines, with / without the JWKS:
 *     +BODY     a record sealed with the next seq and the head's hash, its
 *               body "event":"BODY (BODY goes on with the event's name)
 *     -BODY     the same with the head's own seq (a repeated seq)
 *     ^BODY     the next seq, prev 64 zeros
 *     !TEXT     TEXT as it is (a partial or damaged line)
 *     ~[D]      a restart record naming the ! lines since the last sealed
 *               one (as ag_audit_tail counts them), D added to its bytes
 *     #[N]      a checkpoint of seq N (default: the head) signed with the
 *               gateway's key; %[N] the same signed with another key
 *   anything else: raw lines (after that first byte) with the JWKS
 *
 * Oracles: a parsed line has the fixed form (seq from 1, 27-character ts,
 * [a-z] event, hex prev and hash, signed_len where ,"hash" starts); the
 * verifier's counts are consistent (records = last - first + 1, nothing
 * counted that was not fed); in structured mode, a chain of only plain
 * records sealed in order, each a well-formed line, verifies.
 *
 * AG_FUZZ_AUDIT_DUMP=FILE writes the lines fed (the sealed chain, in
 * structured mode) to FILE: that is how the raw seeds are made.
 */

#include <inttypes.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "fuzz.h"
#include "ag_audit.h"


#define AG_FUZZ_AUDIT_ISS    "https://gw.example"
#define AG_FUZZ_AUDIT_SEQS   64         /* hashes kept for checkpoints */


typedef struct {
    ag_audit_key_t  *key;
    EVP_PKEY        *gw;
    EVP_PKEY        *evil;
    char             kid[64];
    ag_jwks_t       *jwks;
} ag_fuzz_audit_fx_t;

static ag_fuzz_audit_fx_t  ag_fuzz_audit_fx;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char                 err[256], *text;
    unsigned char        k[32];
    const char          *kids[1];
    static const char    label[] = "agentgov-fuzz:audit";
    ag_fuzz_audit_fx_t  *fx = &ag_fuzz_audit_fx;

    (void) argc;
    (void) argv;

    SHA256((const unsigned char *) label, sizeof(label) - 1, k);
    fx->key = ag_audit_key_new(k, sizeof(k), err, sizeof(err));
    if (fx->key == NULL) {
        ag_fuzz_fail("audit key: %s", err);
    }

    fx->gw = ag_fuzz_key("ED25519", "audit-gw");
    fx->evil = ag_fuzz_key("ED25519", "audit-evil");

    if (ag_key_thumbprint(fx->gw, fx->kid, sizeof(fx->kid)) != 0) {
        ag_fuzz_fail("thumbprint");
    }

    kids[0] = fx->kid;
    text = ag_fuzz_jwks_text(&fx->gw, kids, 1);
    fx->jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    free(text);
    if (fx->jwks == NULL) {
        ag_fuzz_fail("JWKS: %s", err);
    }

    return 0;
}


static void
ag_fuzz_line_ok(const char *line, size_t len)
{
    char             err[128];
    size_t           i;
    ag_audit_line_t  l;

    if (ag_audit_line_parse(line, len, &l, err, sizeof(err)) != 0) {
        ag_fuzz_assert(err[0] != '\0');
        return;
    }

    ag_fuzz_assert(l.seq >= 1);
    ag_fuzz_assert(l.ts.len == AG_AUDIT_TS_LEN && l.ts.p > line
                   && l.ts.p + l.ts.len <= line + len);
    ag_fuzz_assert(l.event.len > 0 && l.event.p + l.event.len < line + len);
    for (i = 0; i < l.event.len; i++) {
        ag_fuzz_assert(l.event.p[i] >= 'a' && l.event.p[i] <= 'z');
    }
    ag_fuzz_assert(l.signed_len + 9 + AG_AUDIT_HEX + 2 == len);
    ag_fuzz_assert(memcmp(line + l.signed_len, ",\"hash\":\"", 9) == 0);
    ag_fuzz_assert(memcmp(line + l.signed_len - AG_AUDIT_HEX - 1, l.prev,
                          AG_AUDIT_HEX) == 0);
    ag_fuzz_assert(memcmp(line + l.signed_len + 9, l.hash, AG_AUDIT_HEX) == 0);
    ag_fuzz_assert(line[0] == '{' && line[len - 1] == '}');
}


/* --- feeding lines --------------------------------------------------------------- */

typedef struct {
    ag_audit_verifier_t  *v;
    int                   failed;
    uint64_t              fed;
    FILE                 *dump;
} ag_fuzz_feed_t;


static void
ag_fuzz_feed(ag_fuzz_feed_t *f, const char *line, size_t len, int complete)
{
    char  err[512];

    ag_fuzz_line_ok(line, len);

    if (f->dump != NULL) {
        fwrite(line, 1, len, f->dump);
        if (complete) {
            fputc('\n', f->dump);
        }
    }

    if (f->failed) {
        return;
    }

    f->fed++;

    if (ag_audit_verify_line(f->v, line, len, complete, err, sizeof(err))
        != 0)
    {
        ag_fuzz_assert(err[0] != '\0');
        f->failed = 1;

        if (ag_fuzz_debug()) {
            fprintf(stderr, "audit: %s\n", err);
        }

        /* broken stays broken */
        ag_fuzz_assert(ag_audit_verify_line(f->v, line, len, complete, err,
                                            sizeof(err)) == -1);
    }
}


static int
ag_fuzz_end(ag_fuzz_feed_t *f)
{
    char                     err[512];
    ag_audit_verify_stats_t  st;

    if (!f->failed && ag_audit_verify_end(f->v, err, sizeof(err)) != 0) {
        ag_fuzz_assert(err[0] != '\0');
        f->failed = 1;

        if (ag_fuzz_debug()) {
            fprintf(stderr, "audit: end: %s\n", err);
        }
    }

    ag_audit_verify_stats(f->v, &st);

    ag_fuzz_assert(st.records <= f->fed);
    ag_fuzz_assert(st.checkpoints <= st.records);
    ag_fuzz_assert(st.restarts <= st.records);

    if (st.records > 0) {
        ag_fuzz_assert(st.first_seq >= 1 && st.last_seq >= st.first_seq);
        ag_fuzz_assert(st.last_seq - st.first_seq + 1 == st.records);
    }

    return f->failed ? -1 : 0;
}


static void
ag_fuzz_raw(ag_fuzz_feed_t *f, const char *p, size_t len)
{
    const char  *e, *last;

    for (last = p + len; p < last; p = e + 1) {
        e = memchr(p, '\n', (size_t) (last - p));
        if (e == NULL) {
            ag_fuzz_feed(f, p, (size_t) (last - p), 0);
            break;
        }
        ag_fuzz_feed(f, p, (size_t) (e - p), 1);
    }
}


/* --- structured mode ------------------------------------------------------------- */

typedef struct {
    uint64_t     seq;
    char         hash[AG_AUDIT_HEX];
    struct {
        uint64_t seq;
        char     hash[AG_AUDIT_HEX];
    }            seen[AG_FUZZ_AUDIT_SEQS];
    ag_buf_t     partial;             /* ! lines since the last sealed one */
    int          partial_any;
    int          plain;       /* only + records so far, each well formed */
    uint64_t     records;
} ag_fuzz_chain_t;


static const char  ag_fuzz_zero[AG_AUDIT_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";


static void
ag_fuzz_seal(ag_fuzz_feed_t *f, ag_fuzz_chain_t *c, uint64_t seq,
    const char *prev, const char *body, size_t len)
{
    char             hash[AG_AUDIT_HEX], err[128];
    ag_buf_t         out;
    ag_audit_line_t  l;

    memset(&out, 0, sizeof(out));

    if (ag_audit_seal(ag_fuzz_audit_fx.key, seq, AG_FUZZ_NOW * 1000000 + 17,
                      body, len, prev, &out, hash) != 0)
    {
        ag_fuzz_fail("seal failed");
    }

    if (c->plain
        && (ag_audit_line_parse(out.p, out.len - 1, &l, err, sizeof(err)) != 0
            || (l.event.len == 7 && memcmp(l.event.p, "restart", 7) == 0)
            || (l.event.len == 10
                && memcmp(l.event.p, "checkpoint", 10) == 0)))
    {
        c->plain = 0;
    }

    ag_fuzz_feed(f, out.p, out.len - 1, 1);
    ag_buf_free(&out);

    c->seq = seq;
    memcpy(c->hash, hash, AG_AUDIT_HEX);
    c->seen[seq % AG_FUZZ_AUDIT_SEQS].seq = seq;
    memcpy(c->seen[seq % AG_FUZZ_AUDIT_SEQS].hash, hash, AG_AUDIT_HEX);
    c->records++;

    ag_buf_reset(&c->partial);
    c->partial_any = 0;
}


static void
ag_fuzz_record(ag_fuzz_feed_t *f, ag_fuzz_chain_t *c, uint64_t seq,
    const char *prev, const char *p, size_t len)
{
    ag_buf_t  body;

    memset(&body, 0, sizeof(body));
    ag_buf_str(&body, "\"event\":\"");
    ag_buf_add(&body, p, len);
    ag_fuzz_seal(f, c, seq, prev, body.p, body.len);
    ag_buf_free(&body);
}


static int64_t
ag_fuzz_num(const char *p, size_t len, int64_t dflt)
{
    int      neg;
    size_t   i;
    int64_t  n;

    neg = (len > 0 && p[0] == '-');
    n = 0;

    for (i = neg; i < len && i < 12 && p[i] >= '0' && p[i] <= '9'; i++) {
        n = n * 10 + (p[i] - '0');
    }

    return i == (size_t) neg ? dflt : (neg ? -n : n);
}


static void
ag_fuzz_restart(ag_fuzz_feed_t *f, ag_fuzz_chain_t *c, const char *p,
    size_t len)
{
    char            sha[AG_AUDIT_HEX + 1];
    size_t          i;
    int64_t         delta;
    unsigned char   md[32];
    ag_audit_tail_t t;
    ag_buf_t        body;

    delta = ag_fuzz_num(p, len, 0);

    SHA256((const unsigned char *) (c->partial.p ? c->partial.p : ""),
           c->partial.len, md);
    for (i = 0; i < sizeof(md); i++) {
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    }

    memset(&t, 0, sizeof(t));
    t.found = c->records > 0;
    t.seq = c->seq;
    t.partial_len = (off_t) c->partial.len + delta;
    if (t.partial_len < 0) {
        t.partial_len = 0;
    }
    memcpy(t.partial_sha256, sha, AG_AUDIT_HEX);

    memset(&body, 0, sizeof(body));
    ag_audit_restart_body(&t, &body);
    ag_fuzz_seal(f, c, c->seq + 1, c->hash, body.p, body.len);
    ag_buf_free(&body);
}


static void
ag_fuzz_checkpoint(ag_fuzz_feed_t *f, ag_fuzz_chain_t *c, int evil,
    const char *p, size_t len)
{
    char        err[256];
    uint64_t    seq;
    ag_buf_t    body;
    const char *hash;

    seq = (uint64_t) ag_fuzz_num(p, len, (int64_t) c->seq);
    if (seq == 0) {
        seq = 1;
    }

    hash = ag_fuzz_zero;
    if (c->seen[seq % AG_FUZZ_AUDIT_SEQS].seq == seq) {
        hash = c->seen[seq % AG_FUZZ_AUDIT_SEQS].hash;
    }

    memset(&body, 0, sizeof(body));
    if (ag_audit_checkpoint_body(evil ? ag_fuzz_audit_fx.evil
                                      : ag_fuzz_audit_fx.gw,
                                 ag_fuzz_audit_fx.kid, AG_FUZZ_AUDIT_ISS, seq,
                                 hash, AG_FUZZ_NOW, &body, err, sizeof(err))
        != 0)
    {
        ag_fuzz_fail("checkpoint: %s", err);
    }

    ag_fuzz_seal(f, c, c->seq + 1, c->hash, body.p, body.len);
    ag_buf_free(&body);
}


static void
ag_fuzz_structured(ag_fuzz_feed_t *f, const char *p, size_t len)
{
    int              complete;
    size_t           n;
    const char      *e, *last;
    ag_fuzz_chain_t  c;

    memset(&c, 0, sizeof(c));
    memcpy(c.hash, ag_fuzz_zero, AG_AUDIT_HEX);
    c.plain = 1;

    for (last = p + len; p < last; p = e + 1) {
        e = memchr(p, '\n', (size_t) (last - p));
        complete = (e != NULL);
        if (e == NULL) {
            e = last;
        }
        n = (size_t) (e - p);

        if (n == 0 || p[0] != '+') {
            c.plain = 0;
        }

        switch (n ? p[0] : '\0') {

        case '+':
            ag_fuzz_record(f, &c, c.seq + 1, c.hash, p + 1, n - 1);
            break;

        case '-':
            ag_fuzz_record(f, &c, c.seq ? c.seq : 1, c.hash, p + 1, n - 1);
            break;

        case '^':
            ag_fuzz_record(f, &c, c.seq + 1, ag_fuzz_zero, p + 1, n - 1);
            break;

        case '~':
            ag_fuzz_restart(f, &c, p + 1, n - 1);
            break;

        case '#':
        case '%':
            ag_fuzz_checkpoint(f, &c, p[0] == '%', p + 1, n - 1);
            break;

        default:
            /* ! lines, and anything else as it is */
            if (n && p[0] == '!') {
                p++;
                n--;
            }
            if (c.partial_any) {
                ag_buf_add(&c.partial, "\n", 1);
            }
            ag_buf_add(&c.partial, p, n);
            c.partial_any = 1;
            ag_fuzz_feed(f, p, n, complete);
            break;
        }
    }

    if (ag_fuzz_end(f) != 0 && c.plain) {
        ag_fuzz_fail("a chain sealed in order does not verify");
    }

    ag_buf_free(&c.partial);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              mode;
    const char      *dump;
    ag_fuzz_feed_t   f;

    if (size < 1) {
        return 0;
    }

    mode = data[0];

    memset(&f, 0, sizeof(f));
    f.v = ag_audit_verifier_new(ag_fuzz_audit_fx.key,
                                (mode == 'R' || mode == 'S')
                                ? NULL : ag_fuzz_audit_fx.jwks);
    if (f.v == NULL) {
        ag_fuzz_fail("out of memory");
    }

    dump = getenv("AG_FUZZ_AUDIT_DUMP");
    if (dump != NULL) {
        f.dump = fopen(dump, "w");
    }

    if (mode == 's' || mode == 'S') {
        ag_fuzz_structured(&f, (const char *) data + 1, size - 1);

    } else {
        ag_fuzz_raw(&f, (const char *) data + 1, size - 1);
        (void) ag_fuzz_end(&f);
    }

    if (f.dump != NULL) {
        fclose(f.dump);
    }

    ag_audit_verifier_free(f.v);
    return 0;
}
