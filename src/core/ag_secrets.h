/*
 * What an agent must not hold (SPEC section 7): the headers and query
 * parameters stripped before a call leaves, and the scan for secrets in a
 * call's headers, query and body.
 *
 * Patterns are PCRE2, compiled once per policy with JIT: the built-in ones
 * (aws_access_key, aws_secret_key, github_token, gitlab_token, slack_token,
 * stripe_key, openai_key, google_api_key, private_key, jwt) and the policy's
 * "secret_patterns". A finding names its pattern and the first 8 hex digits
 * of the SHA-256 of the matched text, never the text.
 *
 * Scanning is not fooled by encodings: a header value is scanned as sent; a
 * query as sent and with each parameter's name and value percent-decoded
 * ('+' as space); a body as sent, with JSON escapes decoded (\u0041KIA...,
 * \/, surrogate pairs), and percent-decoded.
 */

#ifndef AG_SECRETS_H
#define AG_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "ag_call.h"
#include "ag_policy.h"


#define AG_SECRETS_FINDINGS_MAX   16
#define AG_SECRETS_NAME_MAX       128


typedef struct ag_secrets_s  ag_secrets_t;

typedef struct {
    const char  *pattern;        /* its name (owned by the ag_secrets_t) */
    char         sha8[9];        /* first 8 hex digits of SHA-256, NUL */
    const char  *where;          /* "header", "path", "query" or "body" */
} ag_finding_t;


/* Compile the built-in patterns and the policy's. NULL with err. */
ag_secrets_t *ag_secrets_new(const ag_policy_t *p, char *err, size_t errlen);
void ag_secrets_free(ag_secrets_t *s);

/* ADDED: the patterns in scan order, built-in ones first: how many, and
   the name and PCRE2 source (*src, may be NULL) of the i-th (NULL past the
   end). For tests, fuzz oracles and tooling. */
size_t ag_secrets_count(const ag_secrets_t *s);
const char *ag_secrets_pattern(const ag_secrets_t *s, size_t i,
    const char **src);

/*
 * Scan a call: headers (every one but the gateway's own: Agent-Authorization,
 * Agent-Task, Agent-Approval), the path (normalised, as rules see it), the
 * query, and body (raw bytes, may be NULL).
 * Patterns the tool lists in allow_secrets are not reported. Fills up to max
 * findings, distinct by (pattern, sha8), in the order found; returns how many
 * (0: clean), or -1 with err when scanning itself failed (the caller refuses:
 * fail closed).
 */
int ag_secrets_scan(const ag_secrets_t *s, const ag_tool_t *tool,
    const ag_call_t *call, const char *body, size_t body_len,
    ag_finding_t *out, size_t max, char *err, size_t errlen);

/* Overwrite every match of every pattern in text with '*', in place. 0, or
   -1 when matching failed. */
int ag_secrets_redact(const ag_secrets_t *s, char *text, size_t len);

/* Whether a header must be stripped for this tool (built-in list, the
   policy's top-level and the tool's "strip"): case-insensitive. */
int ag_strip_header(const ag_policy_t *p, const ag_tool_t *tool,
    const char *name, size_t len);

/*
 * The query without the parameters that must be stripped (built-in list,
 * policy, tool; names compared after percent-decoding, case-insensitively).
 * out (at least len bytes) gets the kept parameters in their order and
 * encoding, joined with '&'; *outlen its length. removed[] gets the names of
 * the stripped ones as sent (pointers into q), at most max; returns how many
 * were stripped (counting beyond max).
 */
size_t ag_strip_query(const ag_policy_t *p, const ag_tool_t *tool,
    const char *q, size_t len, char *out, size_t *outlen, ag_str_t *removed,
    size_t max);

#endif /* AG_SECRETS_H */
