/*
 * Minted tool credentials and their per-process cache (SPEC section 7).
 *
 * The cache is what keeps asymmetric signing off the hot path: a call of a
 * task to a tool mints once, then reuses the token while more than half its
 * life is left, so a tool sees a fresh token at least every ttl/2 and never
 * one that outlives the task.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <jansson.h>

#include "ag_cred.h"
#include "ag_jwt.h"
#include "ag_util.h"


/* "root>mid>this": the delegators nearest first, as nested RFC 8693 act
   claims; NULL at depth 0 (the agent acts for itself). */

static json_t *
ag_cred_act(ag_str_t chain, ag_str_t agent)
{
    const char  *p, *last, *start;
    json_t      *act, *outer;
    size_t       len;

    if (chain.len == 0) {
        return NULL;
    }

    p = chain.p;
    last = chain.p + chain.len;

    /* the chain ends with the agent itself: leave it out */
    len = chain.len;
    if (len > agent.len && memcmp(last - agent.len, agent.p, agent.len) == 0
        && last[-(long) agent.len - 1] == '>')
    {
        last -= agent.len + 1;
    }

    act = NULL;

    /* from the root outwards: each delegator wraps the one before it */
    while (p < last) {
        start = p;
        while (p < last && *p != '>') {
            p++;
        }

        outer = json_pack("{s:s#}", "sub", start, (int) (p - start));
        if (outer == NULL) {
            json_decref(act);
            return NULL;
        }

        if (act != NULL && json_object_set_new(outer, "act", act) != 0) {
            json_decref(outer);
            return NULL;
        }

        act = outer;

        if (p < last) {
            p++;
        }
    }

    return act;
}


int
ag_cred_mint(EVP_PKEY *key, const char *kid, const char *iss,
    const ag_task_t *t, const ag_tool_t *tool, int64_t now, ag_cred_t *out,
    char *err, size_t errlen)
{
    int      rc;
    json_t  *claims, *act;
    int64_t  exp, ttl;

    memset(out, 0, sizeof(ag_cred_t));

    if (tool->cred_type != AG_CRED_JWT || tool->cred_audience == NULL) {
        ag_errf(err, errlen, "tool \"%s\" has no jwt credential", tool->name);
        return -1;
    }

    ttl = tool->cred_ttl > 0 ? tool->cred_ttl : 60;
    exp = now + ttl;

    if (exp > t->expires) {
        exp = t->expires;
    }

    if (exp <= now) {
        ag_errf(err, errlen, "the task has expired");
        return -1;
    }

    if (ag_task_id_new(out->jti) != 0) {
        ag_errf(err, errlen, "no random bytes for a jti");
        return -1;
    }

    claims = json_pack("{s:s, s:s, s:s#, s:s#, s:s#, s:s, s:s, s:I, s:I}",
                       "iss", iss,
                       "aud", tool->cred_audience,
                       "sub", t->agent.p, (int) t->agent.len,
                       "task", t->id.p, (int) t->id.len,
                       "intent", t->intent.p, (int) t->intent.len,
                       "scope", tool->name,
                       "jti", out->jti,
                       "iat", (json_int_t) now,
                       "exp", (json_int_t) exp);
    if (claims == NULL) {
        ag_errf(err, errlen, "out of memory");
        return -1;
    }

    if (t->chain.len) {
        act = ag_cred_act(t->chain, t->agent);

        if (act != NULL && json_object_set_new(claims, "act", act) != 0) {
            json_decref(claims);
            ag_errf(err, errlen, "out of memory");
            return -1;
        }
    }

    rc = ag_jwt_sign(key, kid, AG_CRED_TYP, claims, &out->token, err, errlen);
    json_decref(claims);

    if (rc != 0) {
        out->token = NULL;
        return -1;
    }

    out->iat = now;
    out->exp = exp;

    return 0;
}


void
ag_cred_clear(ag_cred_t *c)
{
    if (c->token != NULL) {
        OPENSSL_cleanse(c->token, strlen(c->token));
        free(c->token);
    }

    memset(c, 0, sizeof(ag_cred_t));
}


/* --- the cache ----------------------------------------------------------------- */

typedef struct {
    char        *task;           /* NUL-terminated copies */
    char        *tool;
    ag_cred_t    cred;
} ag_credcache_slot_t;

struct ag_credcache_s {
    size_t                nslots;
    ag_credcache_slot_t  *slots;
};


ag_credcache_t *
ag_credcache_new(size_t slots)
{
    ag_credcache_t  *cc;

    if (slots == 0) {
        return NULL;
    }

    cc = calloc(1, sizeof(ag_credcache_t));
    if (cc == NULL) {
        return NULL;
    }

    cc->slots = calloc(slots, sizeof(ag_credcache_slot_t));
    if (cc->slots == NULL) {
        free(cc);
        return NULL;
    }

    cc->nslots = slots;

    return cc;
}


static void
ag_credcache_empty(ag_credcache_slot_t *s)
{
    free(s->task);
    free(s->tool);
    s->task = NULL;
    s->tool = NULL;
    ag_cred_clear(&s->cred);
}


void
ag_credcache_free(ag_credcache_t *cc)
{
    size_t  i;

    if (cc == NULL) {
        return;
    }

    for (i = 0; i < cc->nslots; i++) {
        ag_credcache_empty(&cc->slots[i]);
    }

    free(cc->slots);
    free(cc);
}


/* FNV-1a over task id, a separator and the tool's name */

static ag_credcache_slot_t *
ag_credcache_slot(ag_credcache_t *cc, ag_str_t task, ag_str_t tool)
{
    size_t    i;
    uint64_t  h;

    h = 1469598103934665603ULL;

    for (i = 0; i < task.len; i++) {
        h = (h ^ (unsigned char) task.p[i]) * 1099511628211ULL;
    }

    h = (h ^ 0xff) * 1099511628211ULL;

    for (i = 0; i < tool.len; i++) {
        h = (h ^ (unsigned char) tool.p[i]) * 1099511628211ULL;
    }

    return &cc->slots[h % cc->nslots];
}


static int
ag_credcache_is(const char *s, ag_str_t v)
{
    return s != NULL && strlen(s) == v.len && memcmp(s, v.p, v.len) == 0;
}


const ag_cred_t *
ag_credcache_get(ag_credcache_t *cc, ag_str_t task, ag_str_t tool,
    int64_t now, int64_t task_expires)
{
    ag_credcache_slot_t  *s;

    if (cc == NULL) {
        return NULL;
    }

    s = ag_credcache_slot(cc, task, tool);

    if (s->cred.token == NULL || !ag_credcache_is(s->task, task)
        || !ag_credcache_is(s->tool, tool))
    {
        return NULL;
    }

    /* more than half its life left, and not past the task */
    if ((s->cred.exp - now) * 2 <= s->cred.exp - s->cred.iat
        || s->cred.exp > task_expires || now >= task_expires)
    {
        ag_credcache_empty(s);
        return NULL;
    }

    return &s->cred;
}


int
ag_credcache_put(ag_credcache_t *cc, ag_str_t task, ag_str_t tool,
    ag_cred_t *c)
{
    ag_credcache_slot_t  *s;

    if (cc == NULL) {
        ag_cred_clear(c);
        return -1;
    }

    s = ag_credcache_slot(cc, task, tool);
    ag_credcache_empty(s);

    s->task = malloc(task.len + 1);
    s->tool = malloc(tool.len + 1);

    if (s->task == NULL || s->tool == NULL) {
        ag_credcache_empty(s);
        ag_cred_clear(c);
        return -1;
    }

    memcpy(s->task, task.p, task.len);
    s->task[task.len] = '\0';
    memcpy(s->tool, tool.p, tool.len);
    s->tool[tool.len] = '\0';

    s->cred = *c;
    memset(c, 0, sizeof(ag_cred_t));

    return 0;
}
