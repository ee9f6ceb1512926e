/*
 * Who may decide a held call, when its approvals are complete, and the call
 * digest async grants are bound to (SPEC section 6).
 */

#include <string.h>

#include <openssl/evp.h>

#include "ag_hold.h"
#include "ag_util.h"


static int
ag_hold_in_any(const ag_policy_t *p, const ag_identity_t *id,
    const char *const *groups, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ag_policy_in_group(p, id, groups[i])) {
            return 1;
        }
    }

    return 0;
}


uint32_t
ag_hold_may_decide(const ag_policy_t *p, const ag_rule_t *const *rules,
    size_t nrules, const ag_identity_t *id, int64_t requested, int64_t now)
{
    size_t             i;
    uint32_t           may;
    const ag_rule_t   *r;

    may = 0;

    /* ag_policy_in_group is false for any identity that is an agent's */
    for (i = 0; i < nrules && i < 32; i++) {
        r = rules[i];

        if (ag_hold_in_any(p, id, r->approvers, r->napprovers)
            || (r->escalate_after > 0 && now - requested >= r->escalate_after
                && ag_hold_in_any(p, id, r->escalate_to, r->nescalate_to)))
        {
            may |= (uint32_t) 1 << i;
        }
    }

    return may;
}


int
ag_hold_satisfied(const ag_hold_t *h, const ag_rule_t *const *rules,
    size_t nrules)
{
    int       count, outsider;
    size_t    i, v;
    uint32_t  bit;

    for (i = 0; i < nrules && i < 32; i++) {
        bit = (uint32_t) 1 << i;
        count = 0;
        outsider = 0;

        for (v = 0; v < h->nvotes; v++) {
            if (h->votes[v].approve && (h->votes[v].rules & bit)) {
                count++;
                outsider |= !h->votes[v].owner;
            }
        }

        if (count < (rules[i]->approvals > 0 ? rules[i]->approvals : 1)) {
            return 0;
        }

        /* the owner's own people may not be the only approvers */
        if (rules[i]->separate_from_owner && !outsider) {
            return 0;
        }
    }

    return 1;
}


ag_hold_result_t
ag_hold_decide(const ag_policy_t *p, ag_hold_t *h,
    const ag_rule_t *const *rules, size_t nrules, const ag_identity_t *id,
    ag_str_t who, int approve, const char *owner, int64_t requested,
    int64_t now)
{
    size_t           v;
    uint32_t         may;
    ag_hold_vote_t  *vote;

    if (h->state != AG_HOLD_PENDING) {
        return AG_HOLD_CONFLICT;
    }

    may = ag_hold_may_decide(p, rules, nrules, id, requested, now);
    if (may == 0 || who.len == 0 || who.len >= AG_HOLD_WHO_MAX) {
        return AG_HOLD_NOT_APPROVER;
    }

    for (v = 0; v < h->nvotes; v++) {
        if (strlen(h->votes[v].who) == who.len
            && memcmp(h->votes[v].who, who.p, who.len) == 0)
        {
            return AG_HOLD_CONFLICT;
        }
    }

    if (h->nvotes == AG_HOLD_PEOPLE_MAX) {
        return AG_HOLD_TOO_MANY;
    }

    vote = &h->votes[h->nvotes++];
    memset(vote, 0, sizeof(ag_hold_vote_t));
    memcpy(vote->who, who.p, who.len);
    vote->rules = may;
    vote->approve = approve ? 1 : 0;
    vote->owner = (owner != NULL && ag_policy_in_group(p, id, owner)) ? 1 : 0;

    if (!approve) {
        h->state = AG_HOLD_DENIED;
        return AG_HOLD_NOW_DENIED;
    }

    if (ag_hold_satisfied(h, rules, nrules)) {
        h->state = AG_HOLD_APPROVED;
        return AG_HOLD_NOW_APPROVED;
    }

    return AG_HOLD_RECORDED;
}


int64_t
ag_hold_timeout(const ag_rule_t *const *rules, size_t nrules, int64_t cap)
{
    size_t   i;
    int64_t  t;

    t = cap;

    for (i = 0; i < nrules; i++) {
        if (rules[i]->timeout > 0 && rules[i]->timeout < t) {
            t = rules[i]->timeout;
        }
    }

    return t;
}


const char *
ag_hold_state_name(ag_hold_state_t s)
{
    switch (s) {
    case AG_HOLD_PENDING:   return "pending";
    case AG_HOLD_APPROVED:  return "approved";
    case AG_HOLD_DENIED:    return "denied";
    case AG_HOLD_EXPIRED:   return "expired";
    case AG_HOLD_CANCELLED: return "cancelled";
    }

    return "unknown";
}


int
ag_hold_digest(const ag_call_t *call, const char *body, size_t body_len,
    char hex[AG_HOLD_DIGEST_HEX])
{
    int             ok;
    unsigned int    n;
    unsigned char   md[32];
    EVP_MD_CTX     *c;

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        return -1;
    }

    ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
         && ag_digest_field(c, "agentgov call v1", 16)
         && ag_digest_field(c, call->agent.p, call->agent.len)
         && ag_digest_field(c, call->task.p, call->task.len)
         && ag_digest_field(c, call->tool.p, call->tool.len)
         && ag_digest_field(c, call->method.p, call->method.len)
         && ag_digest_field(c, call->host.p, call->host.len)
         && ag_digest_field(c, call->path.p, call->path.len)
         && ag_digest_field(c, call->query.p, call->query.len)
         && ag_digest_field(c, body, body_len)
         && EVP_DigestFinal_ex(c, md, &n) == 1;

    EVP_MD_CTX_free(c);

    if (!ok) {
        return -1;
    }

    ag_hex_encode(md, sizeof(md), hex);

    return 0;
}
