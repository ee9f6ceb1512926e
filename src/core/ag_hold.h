/*
 * Holds (SPEC section 6), the part that needs no nginx: who may decide a
 * held call, when its approvals are complete, and the digest that binds an
 * async grant to exactly one call.
 *
 * A hold is satisfied when every matching hold rule is: each has its own
 * approvers groups (and, after escalate_after, its escalate_to groups), its
 * own count of distinct approving people, and perhaps separate_from_owner
 * (a member of the agent's owner group may not be the only approver). A deny
 * by anyone who may decide is final. An agent never decides; the same
 * person deciding twice, or anyone deciding a closed hold, is a conflict.
 */

#ifndef AG_HOLD_H
#define AG_HOLD_H

#include <stddef.h>
#include <stdint.h>

#include "ag_call.h"
#include "ag_policy.h"


#define AG_HOLD_PEOPLE_MAX   8       /* distinct people recorded per hold */
#define AG_HOLD_WHO_MAX      128     /* a person's id, as the API names it */
#define AG_HOLD_DIGEST_HEX   64

typedef enum {
    AG_HOLD_PENDING = 0,
    AG_HOLD_APPROVED,
    AG_HOLD_DENIED,
    AG_HOLD_EXPIRED,
    AG_HOLD_CANCELLED
} ag_hold_state_t;

/* One person's decision: who, and the rules it counted for (bit i: rule i). */
typedef struct {
    char         who[AG_HOLD_WHO_MAX];
    uint32_t     rules;
    int          owner;          /* a member of the agent's owner group */
    int          approve;
} ag_hold_vote_t;

/*
 * The state of one hold's approvals. rules[] are the matching hold rules in
 * file order (ag_decision_t.holds); the struct holds no pointer into a
 * request, so it can be copied in and out of shared memory as it is, with
 * rules named again from the policy by id (ag_policy_rule).
 */
typedef struct {
    ag_hold_state_t  state;
    size_t           nvotes;
    ag_hold_vote_t   votes[AG_HOLD_PEOPLE_MAX];
} ag_hold_t;

typedef enum {
    AG_HOLD_RECORDED = 0,    /* an approval counted; still pending */
    AG_HOLD_NOW_APPROVED,    /* that approval completed the hold */
    AG_HOLD_NOW_DENIED,      /* a deny: final */
    AG_HOLD_NOT_APPROVER,    /* 403: not in the rules' groups, or an agent */
    AG_HOLD_CONFLICT,        /* 409: closed, or this person decided already */
    AG_HOLD_TOO_MANY         /* 409: AG_HOLD_PEOPLE_MAX people decided */
} ag_hold_result_t;

/*
 * Which of the rules the identity may decide (bit i: rules[i]) at time now
 * for a hold requested at `requested`: its approvers, or escalate_to once
 * escalate_after has passed. 0 when none (or when the identity is an agent).
 */
uint32_t ag_hold_may_decide(const ag_policy_t *p,
    const ag_rule_t *const *rules, size_t nrules, const ag_identity_t *id,
    int64_t requested, int64_t now);

/*
 * Record a decision of the person `who` (identity id, for groups) on hold h.
 * owner is the agent's owner (a group name, may be NULL): whether the
 * person belongs to it matters for separate_from_owner.
 */
ag_hold_result_t ag_hold_decide(const ag_policy_t *p, ag_hold_t *h,
    const ag_rule_t *const *rules, size_t nrules, const ag_identity_t *id,
    ag_str_t who, int approve, const char *owner, int64_t requested,
    int64_t now);

/* Whether the votes satisfy every rule (for the API's display too). */
int ag_hold_satisfied(const ag_hold_t *h, const ag_rule_t *const *rules,
    size_t nrules);

/* The shortest timeout of the rules, capped by cap (seconds); cap when no
   rule sets one. */
int64_t ag_hold_timeout(const ag_rule_t *const *rules, size_t nrules,
    int64_t cap);

const char *ag_hold_state_name(ag_hold_state_t s);

/*
 * The digest an async grant is bound to: SHA-256 over the agent, task,
 * tool, method, host, path and query of the call and its body, each with
 * its length, in hex. A grant is honoured only for a call of equal digest.
 */
int ag_hold_digest(const ag_call_t *call, const char *body, size_t body_len,
    char hex[AG_HOLD_DIGEST_HEX]);

#endif /* AG_HOLD_H */
