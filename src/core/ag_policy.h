/*
 * The policy engine: load, validate, compile, index and evaluate a policy
 * (SPEC section 5). A compiled policy is immutable and may be shared read-only
 * by any number of threads or forked processes.
 */

#ifndef AG_POLICY_H
#define AG_POLICY_H

#include "ag_call.h"

typedef struct ag_policy_s  ag_policy_t;

typedef enum {
    AG_EFFECT_NONE = 0,
    AG_ALLOW,
    AG_HOLD,
    AG_DENY
} ag_effect_t;

typedef enum {
    AG_MODE_ENFORCE = 0,
    AG_MODE_MONITOR
} ag_mode_t;

/* A compiled rule, as callers need to read it. */
typedef struct {
    const char  *id;
    size_t       index;          /* position in "rules", 0-based */
    ag_effect_t  effect;
    ag_mode_t    mode;
    const char  *reason;         /* NULL when the rule has none */
    const char *const *tags;     /* ntags strings */
    size_t       ntags;

    /* hold keys (SPEC section 6); defaults filled in */
    const char *const *approvers;   /* group names */
    size_t       napprovers;
    const char *const *escalate_to;
    size_t       nescalate_to;
    int64_t      timeout;        /* seconds; 0 when not set */
    int64_t      escalate_after; /* seconds; 0 when not set */
    int64_t      grant_ttl;      /* seconds; default 600 */
    int          approvals;      /* default 1 */
    int          separate_from_owner;
    int          wait;

    /* ADDED: the subjects the rule's "when" reads ("body:/amount",
       "header:X-Priority", ...), each once, as written: what an approver is
       shown first (SPEC section 6); ag_subject_value() in ag_match.h gives
       a call's value for each */
    const char *const *reads;
    size_t       nreads;
} ag_rule_t;

typedef struct {
    const char  *name;
    const char  *owner;
    int          max_tasks;      /* default 100 */
    int          max_pending;    /* default 20 */
} ag_agent_t;

typedef enum {
    AG_CRED_NONE = 0,
    AG_CRED_JWT,
    AG_CRED_SECRET
} ag_cred_type_t;

typedef struct {
    const char  *name;
    int          mcp;            /* "protocol": "mcp" */
    const char  *upstream;       /* NULL when not set */
    const char *const *hosts;    /* lower case */
    size_t       nhosts;

    ag_cred_type_t cred_type;
    const char  *cred_audience;  /* jwt */
    int64_t      cred_ttl;       /* jwt, seconds (max 300) */
    const char  *cred_secret;    /* secret: agentgov_secret name */
    const char  *cred_header;    /* default "Authorization" */
    const char  *cred_format;    /* default "Bearer {token}" / "Bearer {secret}" */

    const char *const *strip_headers;   /* additions to the defaults */
    size_t       nstrip_headers;
    const char *const *strip_query;
    size_t       nstrip_query;
    const char *const *allow_secrets;
    size_t       nallow_secrets;

    int          reads_body;     /* some rule that can apply reads body: or args: */

    /* ADDED: "pins" (MCP tool definition name -> SHA-256, lower-case hex) */
    const char *const *pin_names;
    const char *const *pin_sha256;
    size_t       npins;
} ag_tool_t;

typedef struct {
    const char  *name;
    const char *const *agents;
    size_t       nagents;
    const char *const *tools;
    size_t       ntools;
    int64_t      max_ttl;        /* seconds */
    int64_t      max_lifetime;   /* seconds; default 4 * max_ttl */
    int          max_depth;      /* default 3 */
    int64_t      budget_calls;   /* 0: none */
    int64_t      budget_rate_n;  /* "20/s": n = 20, per = 1; 0: none */
    int64_t      budget_rate_per;
} ag_intent_t;

/* An identity proven by mTLS or by a verified JWT. */
typedef struct {
    ag_str_t     spiffe;         /* the SPIFFE ID, when mTLS proved it */
    json_t      *claims;         /* verified JWT claims (borrowed), or NULL */
} ag_identity_t;

#define AG_MAX_HOLD_RULES  16

typedef struct {
    ag_effect_t  effect;         /* what is enforced: AG_ALLOW, AG_HOLD or AG_DENY */
    const ag_rule_t *rule;       /* first deciding enforced rule in file order;
                                    NULL when "default" decided */
    const char  *reason;         /* the rule's reason, or a fixed text; never NULL */

    /* every matching enforced hold rule in file order, when effect is AG_HOLD */
    const ag_rule_t *holds[AG_MAX_HOLD_RULES];
    size_t       nholds;

    /* the strongest would-be effect of matching monitor-mode rules, when it is
       stronger than the enforced one; AG_EFFECT_NONE otherwise */
    ag_effect_t  monitor_effect;
    const ag_rule_t *monitor_rule;
} ag_decision_t;

/* Trace of an evaluation, for `agentgov policy eval`: called once per rule that
   the index selected, with whether it matched and, if not, why not. */
typedef void (*ag_trace_pt)(void *data, const ag_rule_t *rule, int matched,
    const char *why);

/*
 * Load and compile. On error returns NULL and writes into err a message that
 * names the JSON path, e.g. "/rules/3/when/body:/amount/gt: expected a number".
 * The policy's SHA-256 is taken over the exact bytes given.
 */
ag_policy_t *ag_policy_load(const char *data, size_t len, char *err,
    size_t errlen);
ag_policy_t *ag_policy_load_file(const char *path, char *err, size_t errlen);
void ag_policy_free(ag_policy_t *p);

const char *ag_policy_sha256(const ag_policy_t *p);     /* 64 hex chars */
ag_effect_t ag_policy_default(const ag_policy_t *p);

/* Lint for `agentgov policy check`: unreachable and shadowed rules and other
   things that load but are probably wrong. Calls warn once per finding and
   returns the number of findings. */
typedef void (*ag_warn_pt)(void *data, const char *msg);
int ag_policy_lint(const ag_policy_t *p, ag_warn_pt warn, void *data);

/* Lookups. Names are exact; hosts are matched case-insensitively without port,
   "*.example.org" entries match one or more leading labels. */
const ag_tool_t *ag_policy_tool(const ag_policy_t *p, const char *name,
    size_t len);
const ag_tool_t *ag_policy_tool_by_host(const ag_policy_t *p, const char *host,
    size_t len);
const ag_intent_t *ag_policy_intent(const ag_policy_t *p, const char *name,
    size_t len);
const ag_agent_t *ag_policy_agent_by_name(const ag_policy_t *p,
    const char *name, size_t len);

/* ADDED: the tools in file order, ag_policy_tool_at(p, i) for i below
   ag_policy_ntools(p). */
size_t ag_policy_ntools(const ag_policy_t *p);
const ag_tool_t *ag_policy_tool_at(const ag_policy_t *p, size_t i);

/* The agent an identity maps to, or NULL. */
const ag_agent_t *ag_policy_agent(const ag_policy_t *p,
    const ag_identity_t *id);

/* Whether a (non-agent) identity is a member of the named group. An identity
   that matches any entry of "agents" is never a member (SPEC section 3). */
int ag_policy_in_group(const ag_policy_t *p, const ag_identity_t *id,
    const char *group);

/* ADDED: whether a (non-agent) identity is in one of the groups that
   "admins" / "auditors" list. */
int ag_policy_is_admin(const ag_policy_t *p, const ag_identity_t *id);
int ag_policy_is_auditor(const ag_policy_t *p, const ag_identity_t *id);

/* ADDED: a rule by its id, or NULL (holds name their rules by id). */
const ag_rule_t *ag_policy_rule(const ag_policy_t *p, const char *id,
    size_t len);

/* ADDED: the top-level "strip" additions and "secret_patterns" (name and
   PCRE2 source, already checked to compile with PCRE2_UTF), for the
   secrets module. Each returns the count and sets the array pointers. */
size_t ag_policy_strip_headers(const ag_policy_t *p,
    const char *const **names);
size_t ag_policy_strip_query(const ag_policy_t *p, const char *const **names);
size_t ag_policy_secret_patterns(const ag_policy_t *p,
    const char *const **names, const char *const **regexes);

/*
 * Evaluate a call: rules only (scope, identity and the rest are the caller's).
 * Rule order never changes the effect: deny > hold > allow > default.
 * trace may be NULL; with a trace every selected rule is evaluated and reported.
 * Returns 0, or -1 if evaluation itself failed (the decision is then deny).
 */
int ag_policy_eval(const ag_policy_t *p, const ag_call_t *call,
    ag_decision_t *d, ag_trace_pt trace, void *trace_data);

/* Whether a call with these match keys could be allowed or held, whatever
   its "when" conditions read: 0 when an enforced deny rule without "when"
   matches it, or when no enforced allow or hold rule matches its keys
   (conditions ignored) and the default is deny; 1 otherwise. tools/list
   filtering asks this for a tools/call of each listed tool. */
int ag_policy_may_call(const ag_policy_t *p, const ag_call_t *call);

const char *ag_effect_name(ag_effect_t e);     /* "allow", "hold", "deny" */

/* "90s", "10m", "1h", "2d" → seconds; -1 when malformed. */
int64_t ag_duration_parse(const char *s, size_t len);

#endif /* AG_POLICY_H */
