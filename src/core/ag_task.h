/*
 * Tasks (SPEC section 4): what an agent declared it is doing, for how long and
 * with which tools; the task token that carries it; delegation; budgets.
 *
 * The engine decides everything that needs no shared state: whether a
 * declaration or renewal is allowed by the policy, what the task looks like,
 * how its token is minted and verified, how a budget is spent. The live state
 * (is the task still live, how much budget is left) is the store's (nginx
 * glue), which calls these functions.
 */

#ifndef AG_TASK_H
#define AG_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "ag_call.h"
#include "ag_policy.h"


#define AG_TASK_ID_LEN       22     /* base64url of 16 random bytes */
#define AG_TASK_TOKEN_TYP    "agentgov-task+jwt"
#define AG_TASK_TOKEN_MAX    8192
#define AG_TASK_TOOLS_MAX    1024   /* bytes of the comma-joined tool list */
#define AG_TASK_CHAIN_MAX    2048   /* bytes of "root>child>..." */
#define AG_TASK_PURPOSE_MAX  512
#define AG_TASK_CNF_LEN      64     /* hex SHA-256 of the client certificate */

/* ADDED: the buffer ag_task_plan needs at most: id, tools, chain, each
   NUL-terminated */
#define AG_TASK_PLAN_BUF     (AG_TASK_ID_LEN + 1 + AG_TASK_TOOLS_MAX + 1 \
                              + AG_TASK_CHAIN_MAX + 1)

typedef enum {
    AG_TASK_LIVE = 0,
    AG_TASK_ENDED,          /* by its agent, an admin, or a parent's end */
    AG_TASK_REVOKED,        /* by a suspension, a stop, or a parent's revoke */
    AG_TASK_EXPIRED         /* reported only: a live task past expires */
} ag_task_state_t;

/*
 * A task. Strings are (pointer, length) pairs, borrowed from whoever filled
 * the struct (a JSON document, a buffer, the zone's copy).
 */
typedef struct {
    ag_str_t         id;
    ag_str_t         agent;      /* the agent that declared it */
    ag_str_t         owner;
    ag_str_t         intent;
    ag_str_t         tools;      /* comma-joined tool names, e.g. "tickets,files" */
    ag_str_t         parent;     /* parent task id; empty at depth 0 */
    ag_str_t         chain;      /* agents from the root task's to this
                                    one's: "root>child"; empty at depth 0 */
    ag_str_t         cnf;        /* hex SHA-256 of the agent's client
                                    certificate; empty for JWT identities */
    ag_str_t         purpose;
    int              depth;      /* 0 for a task declared directly */
    ag_task_state_t  state;
    int64_t          granted;    /* first grant, Unix seconds */
    int64_t          expires;    /* Unix seconds */
    int64_t          ended;      /* when it ended or was revoked; 0 if live */

    /* budget, spent only by forwarded calls */
    int64_t          calls;      /* forwarded calls so far */
    int64_t          bucket_mtok;     /* rate tokens left, in 1/1000 */
    int64_t          bucket_ms;       /* when the bucket was last refilled */
} ag_task_t;

/* Why a declaration, renewal or check failed: an SPEC section 9 answer. */
typedef struct {
    int              status;     /* HTTP status */
    const char      *code;       /* "bad_request", "denied", ... */
    char             message[256];
} ag_task_error_t;


/* --- ids and keys --------------------------------------------------------- */

/* A new random task id, NUL-terminated. Returns 0 or -1. */
int ag_task_id_new(char id[AG_TASK_ID_LEN + 1]);

/* Whether s is a well-formed task id. */
int ag_task_id_valid(const char *s, size_t len);

/*
 * The MAC key for task tokens, derived (HKDF-SHA256) from the gateway's
 * signing key, so that every gateway sharing that key accepts the tokens and
 * no other use of the key can produce one. Returns 0, or -1 with err.
 */
int ag_task_key_derive(EVP_PKEY *signing_key, unsigned char key[32],
    char *err, size_t errlen);


/* --- tokens ----------------------------------------------------------------- */

/*
 * Mint the task token: a compact JWS, HS256 under the derived key, typ
 * AG_TASK_TOKEN_TYP, claims iss, tid, sub (agent), intent, tools, chain,
 * depth, parent (when a child), cnf {"x5t#S256"} (when cnf is set), iat, exp
 * (= t->expires). *out is malloc'd and NUL-terminated. Returns 0 or -1.
 */
int ag_task_token_mint(const unsigned char key[32], const char *iss,
    const ag_task_t *t, int64_t now, char **out, char *err, size_t errlen);

typedef enum {
    AG_TASK_TOKEN_OK = 0,
    AG_TASK_TOKEN_MALFORMED,     /* not a task token of this gateway */
    AG_TASK_TOKEN_BAD_MAC,
    AG_TASK_TOKEN_EXPIRED
} ag_task_token_status_t;

/*
 * Verify a task token: size, form, typ, alg HS256, MAC (constant time),
 * iss, exp (no skew: the gateway issued it). On success *claims is a new
 * reference (caller decrefs) and t is filled with pointers into it (id,
 * agent, intent, tools, parent, chain, cnf, depth, expires, and granted =
 * iat, when this token was minted: the store keeps the first grant; every
 * other field zero).
 *
 * The header must be exactly the one ag_task_token_mint writes, and the MAC
 * is checked before the payload is parsed. The claims must be exactly the
 * minted set with their types (unknown claims are refused), and consistent:
 * a root task (depth 0) has chain "" and no parent; a child's chain names
 * depth + 1 agents, the last being sub.
 *
 * ADDED: the verifier adds two keys of its own to *claims, so that t can
 * point at strings the token spells differently: "_tools" (the tools array
 * joined with ',', what t->tools points to) and, when the token has cnf,
 * "_cnf" (the thumbprint as 64 lower-case hex digits, what t->cnf points to).
 * They never come from the token (a token carrying them is refused).
 */
ag_task_token_status_t ag_task_token_verify(const unsigned char key[32],
    const char *iss, const char *tok, size_t len, int64_t now,
    json_t **claims, ag_task_t *t, char *err, size_t errlen);


/* --- policy checks ---------------------------------------------------------- */

/*
 * A declaration: body {"intent", "ttl", "tools"?, "purpose"?} by `agent`
 * (with its certificate thumbprint `cnf`, may be empty), optionally as a child
 * of `parent` (a live task, already checked). Fills t (id, agent, owner,
 * intent, tools, parent, chain, cnf, purpose, depth, granted, expires) with
 * strings in buf (and in the policy, the body, and `parent`), or fails with e:
 *   400 bad_request   malformed body, unknown keys, bad ttl, ttl over max_ttl,
 *                     tools not a list of names
 *   403 denied        intent not in the policy, agent not allowed for it,
 *                     tools outside the intent (or the parent's), depth over
 *                     max_depth, a child with another intent
 * The task id is generated here.
 *
 * Without "tools" the task gets the intent's tools (a child: those of them its
 * parent has). A child also needs its parent's intent and a parent that has
 * not expired; its expiry is capped by the parent's. The checks run in this
 * order: body (400), intent exists (403), agent listed (403), ttl over
 * max_ttl (400), parent (403), tools (400/403), chain (400), so that only an
 * agent allowed the intent learns its max_ttl.
 * ADDED: 503 gateway_error when buf is too small (AG_TASK_PLAN_BUF bytes are
 * always enough) or no random id can be made.
 */
int ag_task_plan(const ag_policy_t *p, const ag_agent_t *agent, ag_str_t cnf,
    json_t *body, const ag_task_t *parent, int64_t now, ag_task_t *t,
    char *buf, size_t buflen, ag_task_error_t *e);

/*
 * A renewal of live task t, evaluated afresh against the policy (the intent
 * must still exist and still list the agent and every tool of the task).
 * ttl_req is the requested TTL in seconds (0: the intent's max_ttl). The new
 * expiry is now + ttl, capped by granted + max_lifetime and by the parent's
 * expiry (parent may be NULL at depth 0). Fails with 400/403 as above.
 * A renewal never shortens: *expires is never earlier than t->expires. When
 * the caps leave nothing after now, 403 denied ("the task reached its
 * max_lifetime", or its parent has expired).
 */
int ag_task_plan_renew(const ag_policy_t *p, const ag_task_t *t,
    const ag_task_t *parent, int64_t ttl_req, int64_t now,
    int64_t *expires, ag_task_error_t *e);

/* Whether tool is in the comma-joined list. */
int ag_task_has_tool(ag_str_t tools, const char *tool, size_t len);


/* --- budgets ---------------------------------------------------------------- */

/*
 * Spend one forwarded call of the intent's budget on t (calls and the rate's
 * token bucket, which starts full). Returns 0 and updates t, or -1 when the
 * budget is exhausted, with *retry_after the seconds to wait (at least 1; for
 * an exhausted call budget, the seconds until the task expires).
 */
int ag_task_budget_spend(const ag_intent_t *in, ag_task_t *t, int64_t now_ms,
    int64_t *retry_after);


/* --- JSON ---------------------------------------------------------------- */

/* The task as the API shows it: {"task", "agent", "owner", "intent", "tools",
   "parent", "chain", "depth", "purpose", "state", "granted_at", "expires_at",
   "ended_at", "calls"}, times RFC 3339 UTC; state "expired" for a live task
   past its expiry. tools is an array of names; parent, chain, purpose and
   ended_at are null when empty (a root task, no purpose, still live).
   NULL when out of memory. */
json_t *ag_task_to_json(const ag_task_t *t, int64_t now);

/* RFC 3339 UTC with seconds: "2026-11-23T10:00:00Z" into out (>= 21 bytes).
   Times outside 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z are clamped
   to those ends, so the text is always RFC 3339. */
void ag_time_rfc3339(int64_t t, char *out, size_t outlen);

/* ADDED: "live", "ended", "revoked", "expired" (audit records, the API). */
const char *ag_task_state_name(ag_task_state_t s);

/* ADDED: the comma-joined tools as a JSON array of strings (the 201 answer
   to a declaration lists them); NULL when out of memory. */
json_t *ag_task_tools_json(ag_str_t tools);

#endif /* AG_TASK_H */
