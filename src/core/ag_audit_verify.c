/*
 * Verifying an audit chain (SPEC section 8), one line at a time, so that a
 * file of any size is checked in constant memory.
 *
 * A record costs one HMAC and no JSON parse: seq, prev and hash sit at fixed
 * places (ag_audit_line_parse). Only `checkpoint` and `restart` records are
 * parsed, because only they say something the chain itself must agree with.
 *
 * Lines that are not records are held, not refused at once: a crash can cut
 * the last line of a file, and the gateway then writes a `restart` record
 * that names those bytes (ag_audit_restart_body). They are what
 * ag_audit_tail counted: every byte after the '\n' that ends the last whole
 * record, up to but not including the '\n' that ends the last of them (the
 * file's own, or the one the writer adds so that the restart record is a
 * line of its own). So partial.bytes and partial.sha256 must be those of
 * the held lines joined by '\n', without a final '\n'.
 *
 * One cut leaves a line that is a whole record but for its '\n': for
 * ag_audit_tail it is partial, and the gateway goes on with a restart record
 * of the same seq, linked to the record before it, and naming exactly that
 * line's bytes. The verifier, which read the line as a record, takes the
 * record back when that restart record follows it, which is why it keeps a
 * copy of the last record's line.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ag_audit.h"
#include "ag_json.h"
#include "ag_util.h"


/* (seq, hash) of the last records, for checkpoints to be matched against */
#define AG_AUDIT_RING        65536
#define AG_AUDIT_WHY_LEN     128

/* what a record added to the counts, to take back with the record */
#define AG_AUDIT_COUNTED_CHECKPOINT  0x01
#define AG_AUDIT_COUNTED_RESTART     0x02

#define ag_event_is(l, name)                                                  \
    ((l)->event.len == sizeof(name) - 1                                       \
     && memcmp((l)->event.p, name, sizeof(name) - 1) == 0)


typedef struct {
    uint64_t     seq;                 /* 0: empty */
    char         hash[AG_AUDIT_HEX];
} ag_audit_seen_t;

struct ag_audit_verifier_s {
    const ag_audit_key_t     *key;
    const ag_jwks_t          *jwks;

    uint64_t                  lines;  /* fed so far */
    int                       failed;
    int                       started;    /* a record was accepted */
    uint64_t                  seq;        /* the last record's */
    char                      hash[AG_AUDIT_HEX];
    char                      last_prev[AG_AUDIT_HEX];
    char                     *last_line;  /* AG_AUDIT_LINE_MAX bytes */
    size_t                    last_len;
    unsigned                  last_counted;
    unsigned                  counted;    /* by the record being checked */

    /* lines after the last record that are not records */
    uint64_t                  held_line;  /* the first of them; 0: none */
    int                       held_complete;  /* the last ended with '\n' */
    uint64_t                  held_bytes;     /* without the last '\n' */
    EVP_MD_CTX               *held_sha;       /* of the same bytes */
    char                      held_why[AG_AUDIT_WHY_LEN];

    ag_audit_verify_stats_t   st;
    ag_audit_seen_t          *ring;
};


static const char  ag_audit_zero[AG_AUDIT_HEX] =
    "0000000000000000000000000000000000000000000000000000000000000000";


ag_audit_verifier_t *
ag_audit_verifier_new(const ag_audit_key_t *k, const ag_jwks_t *jwks)
{
    ag_audit_verifier_t  *v;

    if (k == NULL) {
        return NULL;
    }

    v = calloc(1, sizeof(ag_audit_verifier_t));
    if (v == NULL) {
        return NULL;
    }

    v->ring = calloc(AG_AUDIT_RING, sizeof(ag_audit_seen_t));
    v->last_line = malloc(AG_AUDIT_LINE_MAX);
    v->held_sha = EVP_MD_CTX_new();

    if (v->ring == NULL || v->last_line == NULL || v->held_sha == NULL) {
        ag_audit_verifier_free(v);
        return NULL;
    }

    v->key = k;
    v->jwks = jwks;

    return v;
}


void
ag_audit_verifier_free(ag_audit_verifier_t *v)
{
    if (v == NULL) {
        return;
    }

    EVP_MD_CTX_free(v->held_sha);
    free(v->last_line);
    free(v->ring);
    free(v);
}


void
ag_audit_verify_stats(const ag_audit_verifier_t *v,
    ag_audit_verify_stats_t *st)
{
    *st = v->st;
}


static int
ag_audit_fail(ag_audit_verifier_t *v)
{
    v->failed = 1;
    return -1;
}


static int
ag_audit_is_hex(const char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


/* A hash as a JSON string: 64 lower-case hex digits. */
static const char *
ag_audit_json_hash(json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) != AG_AUDIT_HEX
        || !ag_audit_is_hex(json_string_value(v), AG_AUDIT_HEX))
    {
        return NULL;
    }

    return json_string_value(v);
}


/* A JSON integer from min. */
static int
ag_audit_json_u64(json_t *v, uint64_t min, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0
        || (uint64_t) json_integer_value(v) < min)
    {
        return -1;
    }

    *out = (uint64_t) json_integer_value(v);
    return 0;
}


/* --- lines that are not records ------------------------------------------------ */

static int
ag_audit_hold(ag_audit_verifier_t *v, const char *line, size_t len,
    int complete, const char *why, char *err, size_t errlen)
{
    if (v->held_line == 0) {
        if (EVP_DigestInit_ex(v->held_sha, EVP_sha256(), NULL) != 1) {
            ag_errf(err, errlen, "line %" PRIu64 ": SHA-256 failed", v->lines);
            return ag_audit_fail(v);
        }

        v->held_line = v->lines;
        v->held_bytes = 0;
        snprintf(v->held_why, sizeof(v->held_why), "%s",
                 complete ? why : "the line is cut short");

    } else {
        /* the previous held line's '\n', now known not to be the last */
        if (v->held_complete
            && EVP_DigestUpdate(v->held_sha, "\n", 1) != 1)
        {
            ag_errf(err, errlen, "line %" PRIu64 ": SHA-256 failed", v->lines);
            return ag_audit_fail(v);
        }

        v->held_bytes += v->held_complete;
    }

    if (EVP_DigestUpdate(v->held_sha, line, len) != 1) {
        ag_errf(err, errlen, "line %" PRIu64 ": SHA-256 failed", v->lines);
        return ag_audit_fail(v);
    }

    v->held_bytes += len;
    v->held_complete = complete;

    return 0;
}


static int
ag_audit_held_error(ag_audit_verifier_t *v, char *err, size_t errlen)
{
    ag_errf(err, errlen, "line %" PRIu64 ": not a record (%s), and no restart "
            "record names it (a record was damaged, or the file was cut)",
            v->held_line, v->held_why);
    return ag_audit_fail(v);
}


static int
ag_audit_sha256_hex(EVP_MD_CTX *c, char hex[AG_AUDIT_HEX])
{
    unsigned int   mdlen;
    unsigned char  md[32];

    if (EVP_DigestFinal_ex(c, md, &mdlen) != 1) {
        return -1;
    }

    ag_hex_encode(md, sizeof(md), hex);

    return 0;
}


/* Whether the held bytes are n bytes of SHA-256 sha. */
static int
ag_audit_held_match(ag_audit_verifier_t *v, uint64_t n, const char *sha)
{
    int          rc;
    char         hex[AG_AUDIT_HEX];
    EVP_MD_CTX  *c;

    if (n != v->held_bytes) {
        return 0;
    }

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        return 0;
    }

    rc = EVP_MD_CTX_copy_ex(c, v->held_sha) == 1
         && ag_audit_sha256_hex(c, hex) == 0
         && memcmp(hex, sha, AG_AUDIT_HEX) == 0;

    EVP_MD_CTX_free(c);

    return rc;
}


/* Whether the last record's line, without its '\n', is n bytes of SHA-256
   sha. */
static int
ag_audit_last_match(ag_audit_verifier_t *v, uint64_t n, const char *sha)
{
    int          rc;
    char         hex[AG_AUDIT_HEX];
    EVP_MD_CTX  *c;

    if (n != v->last_len) {
        return 0;
    }

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        return 0;
    }

    rc = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(c, v->last_line, v->last_len) == 1
         && ag_audit_sha256_hex(c, hex) == 0
         && memcmp(hex, sha, AG_AUDIT_HEX) == 0;

    EVP_MD_CTX_free(c);

    return rc;
}


/* --- the two records that say something about the chain ------------------- */

static int
ag_audit_restart(ag_audit_verifier_t *v, const ag_audit_line_t *l,
    json_t *rec, int undo, char *err, size_t errlen)
{
    json_t      *partial;
    uint64_t     offset, bytes;
    const char  *sha;

    partial = json_object_get(rec, "partial");
    sha = ag_audit_json_hash(json_object_get(partial, "sha256"));

    if (!json_is_object(partial)
        || ag_audit_json_u64(json_object_get(partial, "offset"), 0, &offset)
           != 0
        || ag_audit_json_u64(json_object_get(partial, "bytes"), 0, &bytes)
           != 0
        || sha == NULL)
    {
        ag_errf(err, errlen, "seq %" PRIu64 ": a restart record without "
                "partial {offset, bytes, sha256}", l->seq);
        return -1;
    }

    if (undo) {
        if (!ag_audit_last_match(v, bytes, sha)) {
            ag_errf(err, errlen, "seq %" PRIu64 ": the restart record takes "
                    "seq %" PRIu64 " again, but the %" PRIu64 " partial bytes "
                    "it names are not seq %" PRIu64 "'s line (a record was "
                    "changed or replaced)", l->seq, l->seq, bytes, l->seq);
            return -1;
        }

        v->st.records--;

        if (v->last_counted & AG_AUDIT_COUNTED_CHECKPOINT) {
            v->st.checkpoints--;
        }

        if (v->last_counted & AG_AUDIT_COUNTED_RESTART) {
            v->st.restarts--;
        }

    } else if (v->held_line) {
        if (!ag_audit_held_match(v, bytes, sha)) {
            ag_errf(err, errlen, "seq %" PRIu64 ": the %" PRIu64 " partial "
                    "bytes the restart record names are not the bytes from "
                    "line %" PRIu64 " on (the partial line was changed)",
                    l->seq, bytes, v->held_line);
            return -1;
        }

        v->held_line = 0;

    } else if (v->started && bytes != 0) {
        /* before the first record fed, the bytes may be in an earlier file */
        ag_errf(err, errlen, "seq %" PRIu64 ": the restart record names "
                "%" PRIu64 " partial bytes, but seq %" PRIu64 " comes right "
                "before it (the partial line was removed)", l->seq, bytes,
                v->seq);
        return -1;
    }

    v->st.restarts++;
    v->counted |= AG_AUDIT_COUNTED_RESTART;

    return 0;
}


static int
ag_audit_checkpoint_sig(ag_audit_verifier_t *v, const ag_audit_line_t *l,
    json_t *jws, uint64_t seq, const char *hash, char *err, size_t errlen)
{
    char             e[128];
    json_t          *payload;
    uint64_t         pseq;
    const char      *phash;
    ag_jwt_status_t  rc;

    rc = ag_jws_verify_jwks(v->jwks, json_string_value(jws),
                            json_string_length(jws), AG_AUDIT_CHECKPOINT_TYP,
                            &payload, e, sizeof(e));
    if (rc != AG_JWT_OK) {
        ag_errf(err, errlen, "seq %" PRIu64 ": the checkpoint's signature "
                "does not verify: %s (the chain was rewritten, or the JWKS is "
                "not the gateway's)", l->seq, e);
        return -1;
    }

    phash = ag_audit_json_hash(json_object_get(payload, "hash"));

    if (ag_audit_json_u64(json_object_get(payload, "seq"), 1, &pseq) != 0
        || phash == NULL || pseq != seq
        || memcmp(phash, hash, AG_AUDIT_HEX) != 0)
    {
        json_decref(payload);
        ag_errf(err, errlen, "seq %" PRIu64 ": the checkpoint's signed seq "
                "and hash are not the ones it names (the chain was "
                "rewritten)", l->seq);
        return -1;
    }

    json_decref(payload);
    v->st.checkpoints++;
    v->counted |= AG_AUDIT_COUNTED_CHECKPOINT;

    return 0;
}


static int
ag_audit_checkpoint(ag_audit_verifier_t *v, const ag_audit_line_t *l,
    json_t *rec, char *err, size_t errlen)
{
    json_t                 *cp, *jws;
    uint64_t                seq;
    const char             *hash;
    const ag_audit_seen_t  *seen;

    cp = json_object_get(rec, "checkpoint");
    hash = ag_audit_json_hash(json_object_get(cp, "hash"));
    jws = json_object_get(cp, "jws");

    if (!json_is_object(cp)
        || ag_audit_json_u64(json_object_get(cp, "seq"), 1, &seq) != 0
        || hash == NULL || !json_is_string(jws))
    {
        ag_errf(err, errlen, "seq %" PRIu64 ": a checkpoint record without "
                "checkpoint {seq, hash, jws}", l->seq);
        return -1;
    }

    if (seq >= l->seq) {
        ag_errf(err, errlen, "seq %" PRIu64 ": the checkpoint names seq %"
                PRIu64 ", which is not an earlier record", l->seq, seq);
        return -1;
    }

    /* a record before the first one fed can only be vouched for by the
       signature; any other must be one we saw */

    if (v->started && seq >= v->st.first_seq) {
        if (l->seq - seq > AG_AUDIT_RING) {
            ag_errf(err, errlen, "seq %" PRIu64 ": the checkpoint names seq %"
                    PRIu64 ", more than %d records back, which cannot be "
                    "checked", l->seq, seq, AG_AUDIT_RING);
            return -1;
        }

        seen = &v->ring[seq % AG_AUDIT_RING];

        if (seen->seq != seq
            || memcmp(seen->hash, hash, AG_AUDIT_HEX) != 0)
        {
            ag_errf(err, errlen, "seq %" PRIu64 ": the checkpoint names a "
                    "hash that is not seq %" PRIu64 "'s (the chain was "
                    "rewritten)", l->seq, seq);
            return -1;
        }
    }

    if (v->jwks == NULL) {
        return 0;
    }

    return ag_audit_checkpoint_sig(v, l, jws, seq, hash, err, errlen);
}


/* checkpoint and restart records: the one place a record is parsed */
static int
ag_audit_special(ag_audit_verifier_t *v, const ag_audit_line_t *l,
    const char *line, size_t len, int undo, char *err, size_t errlen)
{
    int      rc;
    char     e[128];
    json_t  *rec;

    rec = ag_json_parse(line, len, e, sizeof(e));
    if (!json_is_object(rec)) {
        json_decref(rec);
        ag_errf(err, errlen, "seq %" PRIu64 ": the %.*s record is not valid "
                "JSON (%s)", l->seq, (int) l->event.len, l->event.p,
                rec ? "not an object" : e);
        return -1;
    }

    if (ag_event_is(l, "restart")) {
        rc = ag_audit_restart(v, l, rec, undo, err, errlen);
    } else {
        rc = ag_audit_checkpoint(v, l, rec, err, errlen);
    }

    json_decref(rec);

    return rc;
}


/* --- lines --------------------------------------------------------------------- */

/* seq and prev against the record before; the first record fed has none */
static int
ag_audit_link(ag_audit_verifier_t *v, const ag_audit_line_t *l, char *err,
    size_t errlen)
{
    if (!v->started) {
        if (l->seq == 1 && memcmp(l->prev, ag_audit_zero, AG_AUDIT_HEX) != 0) {
            ag_errf(err, errlen, "seq 1: prev is not 64 zeros, but seq 1 "
                    "begins a chain");
            return -1;
        }

        return 0;
    }

    if (l->seq != v->seq + 1) {
        ag_errf(err, errlen, "seq %" PRIu64 ": expected seq %" PRIu64
                " after seq %" PRIu64 " (a record is missing, reordered or "
                "inserted)", l->seq, v->seq + 1, v->seq);
        return -1;
    }

    if (memcmp(l->prev, v->hash, AG_AUDIT_HEX) != 0) {
        ag_errf(err, errlen, "seq %" PRIu64 ": prev does not match seq %"
                PRIu64 "'s hash (a record is missing, reordered or "
                "inserted)", l->seq, v->seq);
        return -1;
    }

    return 0;
}


int
ag_audit_verify_line(ag_audit_verifier_t *v, const char *line, size_t len,
    int complete, char *err, size_t errlen)
{
    int              special, restart, undo;
    char             e[AG_AUDIT_WHY_LEN], hash[AG_AUDIT_HEX];
    ag_audit_line_t  l;
    ag_audit_seen_t *seen;

    if (v->failed) {
        ag_errf(err, errlen, "the chain is already broken");
        return -1;
    }

    v->lines++;

    if (!complete || len > AG_AUDIT_LINE_MAX
        || ag_audit_line_parse(line, len, &l, e, sizeof(e)) != 0)
    {
        if (len > AG_AUDIT_LINE_MAX) {
            snprintf(e, sizeof(e), "longer than %d bytes", AG_AUDIT_LINE_MAX);
        }

        return ag_audit_hold(v, line, len, complete, e, err, errlen);
    }

    restart = ag_event_is(&l, "restart");
    special = restart || ag_event_is(&l, "checkpoint");

    /* what is held comes first in the file, so it is reported first */
    if (v->held_line && !restart) {
        return ag_audit_held_error(v, err, errlen);
    }

    if (ag_audit_hmac(v->key, line, l.signed_len, hash) != 0) {
        ag_errf(err, errlen, "seq %" PRIu64 ": HMAC-SHA256 failed", l.seq);
        return ag_audit_fail(v);
    }

    if (CRYPTO_memcmp(hash, l.hash, AG_AUDIT_HEX) != 0) {
        ag_errf(err, errlen, "seq %" PRIu64 ": hash does not match (the "
                "record was changed, or the key is not the chain's)", l.seq);
        return ag_audit_fail(v);
    }

    /* a restart record that takes the last record's place: that record
       lost its '\n' in a crash (see the top of this file) */
    undo = restart && v->started && v->held_line == 0 && l.seq == v->seq
           && memcmp(l.prev, v->last_prev, AG_AUDIT_HEX) == 0;

    v->counted = 0;

    if (!undo && ag_audit_link(v, &l, err, errlen) != 0) {
        return ag_audit_fail(v);
    }

    if (special
        && ag_audit_special(v, &l, line, len, undo, err, errlen) != 0)
    {
        return ag_audit_fail(v);
    }

    if (!v->started) {
        v->started = 1;
        v->st.first_seq = l.seq;
    }

    v->seq = l.seq;
    memcpy(v->hash, l.hash, AG_AUDIT_HEX);
    memcpy(v->last_prev, l.prev, AG_AUDIT_HEX);
    memcpy(v->last_line, line, len);
    v->last_len = len;
    v->last_counted = v->counted;

    seen = &v->ring[l.seq % AG_AUDIT_RING];
    seen->seq = l.seq;
    memcpy(seen->hash, l.hash, AG_AUDIT_HEX);

    v->st.records++;
    v->st.last_seq = l.seq;

    return 0;
}


int
ag_audit_verify_end(ag_audit_verifier_t *v, char *err, size_t errlen)
{
    if (v->failed) {
        ag_errf(err, errlen, "the chain is already broken");
        return -1;
    }

    if (v->held_line) {
        ag_errf(err, errlen, "line %" PRIu64 ": not a record (%s), and no "
                "restart record follows it (the file was cut, or the gateway "
                "has not written since a crash)", v->held_line, v->held_why);
        return ag_audit_fail(v);
    }

    return 0;
}
