/*
 * Matching for the policy engine: globs, PCRE2 regexes with JIT and limits,
 * JSON pointers, and the "when" condition trees of rules (SPEC section 5),
 * evaluated in three-valued (Kleene) logic so that doubt can fail closed.
 *
 * Also the two small helpers that the policy compiler shares with it: a
 * memory pool (everything a compiled policy owns lives in one pool and goes
 * with it) and the compile context that tracks the JSON path for errors.
 *
 * This header is internal to the engine (ag_policy.c, the tests, the CLI).
 */

#ifndef AG_MATCH_H
#define AG_MATCH_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "ag_call.h"
#include "ag_policy.h"


/* Three-valued logic: DOUBT is "cannot tell" (missing subject, wrong type,
   suspicious value, regex limit hit). */
typedef enum {
    AG_FALSE = 0,
    AG_TRUE = 1,
    AG_DOUBT = 2
} ag_tri_t;

ag_tri_t ag_tri_not(ag_tri_t a);
const char *ag_tri_name(ag_tri_t a);                /* "true" "false" "doubt" */


/* --- pool ------------------------------------------------------------------ */

typedef struct ag_pool_s  ag_pool_t;

ag_pool_t *ag_pool_create(void);
void ag_pool_destroy(ag_pool_t *pool);              /* runs cleanups, frees all */
void *ag_pool_alloc(ag_pool_t *pool, size_t size);  /* zeroed, 16-aligned */
char *ag_pool_strndup(ag_pool_t *pool, const char *s, size_t len);
/* run fn(data) when the pool is destroyed, latest first; -1 on ENOMEM */
int ag_pool_cleanup_add(ag_pool_t *pool, void (*fn)(void *), void *data);


/* --- compile context: pool, error buffer and the JSON path of the value ------ */

#define AG_JPATH_MAX  512

typedef struct {
    ag_pool_t   *pool;
    char        *err;
    size_t       errlen;
    size_t       plen;
    char         path[AG_JPATH_MAX];
} ag_compile_t;

/* Append "/seg" (not escaped: errors are for people) and return the old
   length for ag_cpop. */
size_t ag_cpush(ag_compile_t *c, const char *seg);
size_t ag_cpush_index(ag_compile_t *c, size_t i);
void ag_cpop(ag_compile_t *c, size_t old);
/* Write "<path>: <message>" into c->err; returns -1 for convenience. */
int ag_cerror(ag_compile_t *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;


/* --- globs ------------------------------------------------------------------ */

/*
 * A glob matches the whole value, case-sensitively. '*' matches any run of
 * bytes without '/', '**' any run at all; nothing else is special. A '**'
 * that follows a '/' and ends the pattern or precedes another '/' also
 * matches zero segments (the '/' before it included): the pattern
 * "/x/" "**" matches "/x" as well as "/x/" and "/x/a/b", and "/a/" "**" "/b"
 * matches "/a/b" (the patterns are split here only to keep this comment
 * a comment). Matching simulates the pattern's automaton over the
 * input, so it costs at most O(len(value) * len(pattern)) whatever the input.
 */

#define AG_GLOB_MAX  1024

typedef struct ag_glob_s  ag_glob_t;

ag_glob_t *ag_glob_compile(ag_pool_t *pool, const char *pat, size_t len,
    char *err, size_t errlen);
int ag_glob_match(const ag_glob_t *g, const char *s, size_t len);
int ag_glob_is_literal(const ag_glob_t *g);         /* no '*' in the pattern */
const char *ag_glob_source(const ag_glob_t *g);     /* NUL-terminated */


/* --- regexes ------------------------------------------------------------------ */

/* Compiled once with PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF (the
   whole value must match), JIT when available, and a match limit so that a
   pathological pattern or input yields DOUBT instead of burning CPU. */

#define AG_REGEX_MATCH_LIMIT  100000
#define AG_REGEX_DEPTH_LIMIT  5000
#define AG_REGEX_MAX          4096

typedef struct ag_regex_s  ag_regex_t;

ag_regex_t *ag_regex_compile(ag_pool_t *pool, const char *src, size_t len,
    char *err, size_t errlen);
const char *ag_regex_source(const ag_regex_t *re);
/* Bytes every value the regex matches starts with, read conservatively
   from the source ("/v1/tickets/" for "/v1/tickets/[0-9]+"; nothing when
   the pattern may alternate at its top level); 0 for none. A value that is
   not valid UTF-8 is not matched at all but doubted (see ag_regex_match),
   whatever it starts with. */
size_t ag_regex_prefix(const ag_regex_t *re, const char **p);

/* Check that a PCRE2 pattern compiles (unanchored, UTF), for secret patterns
   that another module compiles for itself. 0 or -1 with err. */
int ag_regex_check(const char *src, size_t len, char *err, size_t errlen);


/* Per-evaluation scratch: the PCRE2 match data is created on first use and
   freed by ag_scratch_free, so a compiled policy holds nothing mutable and an
   evaluation without regexes allocates nothing. */
typedef struct {
    void        *match_data;     /* pcre2_match_data_8 * */
    char        *buf;            /* decoded query values */
    size_t       bufsize;
    int          failed;         /* an allocation failed: the caller must deny */
    char        *why;            /* when tracing: the deciding condition */
    size_t       whylen;
    const char  *doubt_note;     /* trace text: what doubt means for this rule */
} ag_scratch_t;

void ag_scratch_init(ag_scratch_t *sc);
void ag_scratch_free(ag_scratch_t *sc);

ag_tri_t ag_regex_match(const ag_regex_t *re, const char *s, size_t len,
    ag_scratch_t *sc);


/* --- JSON pointers (RFC 6901) --------------------------------------------------- */

typedef struct ag_jptr_s  ag_jptr_t;

/* "" is the whole document; otherwise '/'-separated tokens with "~1" for '/'
   and "~0" for '~'. */
ag_jptr_t *ag_jptr_compile(ag_pool_t *pool, const char *s, size_t len,
    char *err, size_t errlen);
/* The value at the pointer (borrowed), or NULL. Array tokens must be
   canonical indices ("0", "17"; not "01", "-" or "+1"). */
json_t *ag_jptr_get(const ag_jptr_t *p, json_t *doc);


/* --- call accessors ----------------------------------------------------------------- */

/* Value of a header (name compared case-insensitively). Returns the number
   of occurrences (0, 1 or 2 meaning "more than one"); *v is the first. */
int ag_call_header(const ag_call_t *call, const char *name, size_t len,
    ag_str_t *v);

/* A query parameter, percent-decoded ('+' is a space): 0 absent, 1 found
   (decoded into buf, which must hold the raw query's length), 2 repeated,
   -1 some name or this value is not valid percent-encoding. */
int ag_call_query(const ag_call_t *call, const char *name, size_t len,
    char *buf, ag_str_t *v);

/* Percent-decode ('+' as space); -1 on a bad escape. out holds len bytes. */
int ag_pct_decode(const char *in, size_t len, char *out, size_t *outlen);

/* A '..' segment, split on '/' or '\\' (a value a tool may read as a path
   that climbs out of where the rule looked). */
int ag_has_dotdot(const char *s, size_t len);

/* ^-?[0-9]+(\.[0-9]+)?$ parsed as a number; -1 if not of that form. */
int ag_decimal_parse(const char *s, size_t len, int *is_int, int64_t *i,
    double *d);


/* --- "when" condition trees ------------------------------------------------------------ */

#define AG_WHEN_MAX_DEPTH  16

typedef struct ag_when_s  ag_when_t;

/* Compile the "when" object v, whose JSON path is in c. NULL with c->err. */
ag_when_t *ag_when_compile(ag_compile_t *c, json_t *v);

/*
 * Evaluate in Kleene logic: all (and the members of one object) is FALSE if
 * any member is FALSE, else DOUBT if any is DOUBT; any is TRUE if any member
 * is, else DOUBT if any is; not swaps TRUE and FALSE and keeps DOUBT. When
 * sc->why is set, the condition that decided is described there.
 */
ag_tri_t ag_when_eval(const ag_when_t *w, const ag_call_t *call,
    ag_scratch_t *sc);

/* Whether any subject is body: or args: (the body must be read first). */
int ag_when_reads_body(const ag_when_t *w);

/* The subject keys the tree reads ("body:/amount", "header:X-Priority",
   ...; never "time"), each once, in the order written; returns how many
   (up to max). */
size_t ag_when_subjects(const ag_when_t *w, const char **out, size_t max);

/*
 * The value a subject key ("body:/amount", "header:X-Priority", "query:q",
 * "args:/path", "chain", "depth") has in a call, as JSON for display (an
 * approver sees what the rule read): a new reference, or NULL when missing.
 * A repeated header or query parameter gives an array of its values.
 */
json_t *ag_subject_value(const ag_call_t *call, const char *key, size_t len);


/* --- for the tests ------------------------------------------------------------------- */

/* ag_policy_eval without the path index of large (tool, method) cells: every
   rule of each cell is tested, in file order. Decisions must not differ. */
int ag_policy_eval_unindexed(const ag_policy_t *p, const ag_call_t *call,
    ag_decision_t *d, ag_trace_pt trace, void *trace_data);

#endif /* AG_MATCH_H */
