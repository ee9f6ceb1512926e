/*
 * The audit chain (SPEC section 8): record encoding, the HMAC chain, reading
 * the end of a file, verification and reading backwards.
 *
 * A record is one line:
 *
 *   {"seq":N,"ts":"2026-11-23T15:35:57.123456Z",<body>,"prev":"<64 hex>","hash":"<64 hex>"}\n
 *
 * `hash` is HMAC-SHA256(audit key, every byte of the line before ,"hash"),
 * in lower-case hex, and `prev` is the hash of the record before (64 zeros
 * for the first). The first and last members have a fixed form, so a line
 * is checked without being parsed as JSON, and nothing is ever serialised
 * twice. <body> is written by ag_audit_body in a fixed member order.
 */

#ifndef AG_AUDIT_H
#define AG_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ag_call.h"
#include "ag_jwt.h"


#define AG_AUDIT_HEX          64        /* a hash in hex */
#define AG_AUDIT_KEY_MIN      32        /* bytes of HMAC key at least */
#define AG_AUDIT_KEY_MAX      4096
#define AG_AUDIT_LINE_MAX     (256 * 1024)  /* no record is longer */
#define AG_AUDIT_TS_LEN       27        /* 2026-11-23T15:35:57.123456Z */
#define AG_AUDIT_CHECKPOINT_TYP  "agentgov-checkpoint+jwt"


/* --- a growing buffer ---------------------------------------------------- */

typedef struct {
    char        *p;
    size_t       len;
    size_t       cap;
    int          failed;     /* an allocation failed: the content is cut */
} ag_buf_t;

void ag_buf_reset(ag_buf_t *b);
void ag_buf_free(ag_buf_t *b);
void ag_buf_add(ag_buf_t *b, const void *data, size_t len);
void ag_buf_str(ag_buf_t *b, const char *s);
/* A JSON string: quotes, escapes, and U+FFFD for bytes that are not UTF-8. */
void ag_buf_json_str(ag_buf_t *b, const char *s, size_t len);
void ag_buf_u64(ag_buf_t *b, uint64_t v);


/* --- the key ------------------------------------------------------------- */

typedef struct ag_audit_key_s  ag_audit_key_t;

/* AG_AUDIT_KEY_MIN..AG_AUDIT_KEY_MAX bytes. */
ag_audit_key_t *ag_audit_key_new(const unsigned char *key, size_t len,
    char *err, size_t errlen);
/* The file's whole content is the key. */
ag_audit_key_t *ag_audit_key_load(const char *path, char *err, size_t errlen);
void ag_audit_key_free(ag_audit_key_t *k);

/* HMAC-SHA256 in lower-case hex (64 characters, no NUL). 0 or -1. A key
   serves one thread at a time (it holds the digest state it works in). */
int ag_audit_hmac(const ag_audit_key_t *k, const void *data, size_t len,
    char hex[AG_AUDIT_HEX]);


/* --- records ------------------------------------------------------------- */

/*
 * What a record says. Every string may be empty (omitted from the line);
 * nothing is written for status 0 or latency_us < 0. `extra`, when set, is
 * members already in JSON ("\"policy\":{...}") placed after the others.
 */
typedef struct ag_audit_rec_s {
    const char        *event;     /* call result task approval agent policy
                                     tool checkpoint restart */
    ag_str_t           request_id;
    ag_str_t           agent;
    ag_str_t           owner;
    ag_str_t           task;
    ag_str_t           intent;
    ag_str_t           chain;
    ag_str_t           tool;

    ag_str_t           method;    /* action {method, host, path} */
    ag_str_t           host;
    ag_str_t           path;
    ag_str_t           mcp_method;  /* or action {mcp_method, mcp_tool} */
    ag_str_t           mcp_tool;
    ag_str_t           mcp_resource;  /* resources/read */
    ag_str_t           mcp_prompt;    /* prompts/get */

    ag_str_t           args_sha256;
    ag_str_t           decision;
    ag_str_t           rule;
    ag_str_t           reason;
    ag_str_t           error;     /* a refusal's code (SPEC section 9) */
    const char *const *tags;
    size_t             ntags;
    ag_str_t           approval_id;   /* approval {id, approver, decided_at,
                                         reason} */
    ag_str_t           approver;
    int64_t            decided_at;    /* Unix seconds; 0: none */
    ag_str_t           approval_reason;
    const char        *cred_type;   /* credential {type, kid, jti, exp} */
    const char        *cred_kid;
    ag_str_t           cred_jti;
    int64_t            cred_exp;
    const ag_str_t    *stripped;
    size_t             nstripped;
    const ag_str_t    *findings;
    size_t             nfindings;

    ag_str_t           op;        /* task and agent records: what was done */
    ag_str_t           by;        /* who did it, when not the agent */

    int                status;
    int64_t            latency_us;
    const char        *extra;
} ag_audit_rec_t;

/* Append the record's members (no braces, no seq/ts/prev/hash) to out. */
void ag_audit_body(const ag_audit_rec_t *rec, ag_buf_t *out);

/* RFC 3339 UTC with microseconds: AG_AUDIT_TS_LEN characters and a NUL. */
void ag_audit_ts(int64_t us, char out[AG_AUDIT_TS_LEN + 1]);
int ag_audit_ts_parse(const char *s, size_t len, int64_t *us);

/*
 * Append the whole line of record `seq` (its members in body), with its '\n',
 * to out, and its hash to hash. prev is the previous record's hash. 0, or -1
 * when out could not grow or the HMAC failed (out is then as it was).
 */
int ag_audit_seal(const ag_audit_key_t *k, uint64_t seq, int64_t ts_us,
    const char *body, size_t bodylen, const char prev[AG_AUDIT_HEX],
    ag_buf_t *out, char hash[AG_AUDIT_HEX]);


/* --- lines --------------------------------------------------------------- */

/* The fixed parts of a line (without its '\n'), found without parsing it. */
typedef struct {
    uint64_t     seq;
    ag_str_t     ts;
    ag_str_t     event;
    size_t       signed_len;          /* bytes the hash covers */
    char         prev[AG_AUDIT_HEX];
    char         hash[AG_AUDIT_HEX];
} ag_audit_line_t;

/* 0 if the line has the form above, else -1 with err. */
int ag_audit_line_parse(const char *line, size_t len, ag_audit_line_t *out,
    char *err, size_t errlen);


/* --- the end of a file --------------------------------------------------- */

typedef struct {
    int          found;               /* a whole record was found */
    uint64_t     seq;                 /* the last whole record's */
    char         hash[AG_AUDIT_HEX];
    off_t        size;                /* of the file when read */
    /*
     * Bytes after the last whole record's '\n' that are not whole records
     * (a crash cut the last line short): [partial_offset, + partial_len),
     * not counting a '\n' that ends them; partial_newline when the file
     * does not end with '\n', so the writer must add one before the
     * restart record. The restart record names these bytes exactly.
     */
    int          partial;             /* some bytes follow the last record,
                                         if only an empty line */
    off_t        partial_offset;
    off_t        partial_len;
    int          partial_newline;
    char         partial_sha256[AG_AUDIT_HEX];
} ag_audit_tail_t;

/*
 * Read the end of an audit file (reading backwards, never the whole file
 * unless it holds only broken lines): the last whole record, and what
 * follows it if the last line is incomplete or not a record. 0, or -1 with
 * err on a read error.
 */
int ag_audit_tail(int fd, ag_audit_tail_t *t, char *err, size_t errlen);

/* The members of the `restart` record that follows a partial line. */
void ag_audit_restart_body(const ag_audit_tail_t *t, ag_buf_t *out);


/* --- checkpoints ----------------------------------------------------------- */

/*
 * The members of a checkpoint record for record (seq, hash): the JWS signs
 * {"iss", "seq", "hash", "iat"} with typ AG_AUDIT_CHECKPOINT_TYP and kid.
 * 0, or -1 with err.
 */
int ag_audit_checkpoint_body(EVP_PKEY *key, const char *kid, const char *iss,
    uint64_t seq, const char hash[AG_AUDIT_HEX], int64_t now, ag_buf_t *out,
    char *err, size_t errlen);


/* --- verification ---------------------------------------------------------- */

typedef struct ag_audit_verifier_s  ag_audit_verifier_t;

/* jwks may be NULL: checkpoints are then matched to their records but their
   signatures are not checked. Both are borrowed. */
ag_audit_verifier_t *ag_audit_verifier_new(const ag_audit_key_t *k,
    const ag_jwks_t *jwks);
void ag_audit_verifier_free(ag_audit_verifier_t *v);

/*
 * Feed the next line (without its '\n'; complete = 0 when the file ended
 * before one). 0 while the chain holds; -1 with err naming the seq (or the
 * line) that breaks it and why. A partial line is accepted only when the
 * next record is the `restart` record that names its bytes.
 */
int ag_audit_verify_line(ag_audit_verifier_t *v, const char *line, size_t len,
    int complete, char *err, size_t errlen);

/* After the last line: -1 if a partial line was never explained. */
int ag_audit_verify_end(ag_audit_verifier_t *v, char *err, size_t errlen);

typedef struct {
    uint64_t     records;
    uint64_t     checkpoints;         /* whose signature was checked */
    uint64_t     restarts;
    uint64_t     first_seq;
    uint64_t     last_seq;
} ag_audit_verify_stats_t;

void ag_audit_verify_stats(const ag_audit_verifier_t *v,
    ag_audit_verify_stats_t *st);


/* --- reading backwards (the audit API) ------------------------------------- */

typedef struct {
    ag_str_t     agent;               /* empty: any */
    ag_str_t     task;
    ag_str_t     tool;
    ag_str_t     decision;
    ag_str_t     event;
    int64_t      since_us;            /* records older than this end the scan;
                                         0: none */
} ag_audit_filter_t;

/* Whether a record line (without '\n') matches f; since_us is not checked. */
int ag_audit_filter_match(const ag_audit_filter_t *f, const char *line,
    size_t len);

/*
 * Records of fd that match, newest first, from the byte offset `before`
 * backwards (-1: the end of the file), reading at most max_bytes. handler is
 * called with each matching line (without '\n'; valid during the call) and
 * returns 0 to go on, 1 to stop. *next gets the offset to continue from (0:
 * the start of the file was reached or `since` ended the scan). 0, or -1 with
 * err on a read error.
 */
typedef int (*ag_audit_line_pt)(void *data, const char *line, size_t len);

int ag_audit_read_back(int fd, off_t before, const ag_audit_filter_t *f,
    size_t limit, size_t max_bytes, ag_audit_line_pt handler, void *data,
    off_t *next, char *err, size_t errlen);

#endif /* AG_AUDIT_H */
