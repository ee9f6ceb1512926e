/*
 * Credentials the gateway mints for a tool (SPEC section 7): a JWT per
 * (task, tool), signed with the gateway's key, and the per-process cache
 * that reuses one while more than half its life is left.
 */

#ifndef AG_CRED_H
#define AG_CRED_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "ag_call.h"
#include "ag_policy.h"
#include "ag_task.h"


/* no task token and no audit checkpoint carries this typ */
#define AG_CRED_TYP          "agentgov-credential+jwt"
#define AG_CRED_JTI_LEN      22


typedef struct {
    char        *token;          /* malloc'd, NUL-terminated */
    char         jti[AG_CRED_JTI_LEN + 1];
    int64_t      iat;
    int64_t      exp;
} ag_cred_t;

/*
 * Mint the tool's JWT for a call of task t: iss, aud (the tool's
 * credential audience), sub (the agent), act (the delegation chain, nearest
 * delegator outermost, when the task was delegated), task, intent, scope
 * (the tool), jti, iat, exp = now + the tool's ttl and never past the
 * task's expiry. 0, or -1 with err (also when the task has expired).
 */
int ag_cred_mint(EVP_PKEY *key, const char *kid, const char *iss,
    const ag_task_t *t, const ag_tool_t *tool, int64_t now, ag_cred_t *out,
    char *err, size_t errlen);

void ag_cred_clear(ag_cred_t *c);


/*
 * A small cache of minted credentials by (task id, tool name), for one
 * process. A credential is served while more than half its life is left and
 * never past task_expires (a renewal that shortened the task, or its end);
 * otherwise the caller mints and puts a new one. Entries are replaced, never
 * grown: the cache holds at most `slots` credentials.
 */
typedef struct ag_credcache_s  ag_credcache_t;

ag_credcache_t *ag_credcache_new(size_t slots);
void ag_credcache_free(ag_credcache_t *cc);

/* The cached credential, or NULL. Valid until the next put. */
const ag_cred_t *ag_credcache_get(ag_credcache_t *cc, ag_str_t task,
    ag_str_t tool, int64_t now, int64_t task_expires);

/* Takes the credential (its token) over, also on failure: 0 or -1. */
int ag_credcache_put(ag_credcache_t *cc, ag_str_t task, ag_str_t tool,
    ag_cred_t *c);

#endif /* AG_CRED_H */
