/*
 * The state store: every piece of state the workers share (tasks and their
 * budgets, suspensions, the stop switch; later holds, grants and the audit
 * chain head) is reached through these functions and nothing else. The
 * shared memory zone (ngx_http_agentgov_zone.c) is the single-node
 * implementation; a fleet store can implement the same interface.
 *
 * Every function is atomic with respect to every worker. None blocks on
 * network I/O or asymmetric cryptography while it holds the store's lock.
 *
 * With agentgov_state, a change that takes authority away (task_end, a
 * task_renew that shortens, suspending, stopping) is on disk when the
 * function returns; one that only gives or extends it (task_add, a longer
 * task_renew, resume, start) is written within about a second, so that a
 * crash can lose only those, which fails closed.
 */

#ifndef NGX_HTTP_AGENTGOV_STORE_H
#define NGX_HTTP_AGENTGOV_STORE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ag_task.h"
#include "ag_hold.h"


typedef struct ngx_http_agentgov_store_s  ngx_http_agentgov_store_t;


typedef enum {
    NGX_AGENTGOV_STORE_OK = 0,
    NGX_AGENTGOV_STORE_NOT_FOUND,     /* no such task (or agent) */
    NGX_AGENTGOV_STORE_NOT_LIVE,      /* the task ended, was revoked or expired */
    NGX_AGENTGOV_STORE_LIMIT,         /* the agent is at max_tasks */
    NGX_AGENTGOV_STORE_SUSPENDED,     /* the agent is suspended or all are stopped */
    NGX_AGENTGOV_STORE_EXHAUSTED,     /* budget spent: see retry_after */
    NGX_AGENTGOV_STORE_FULL,          /* no memory left even after expiry */
    NGX_AGENTGOV_STORE_ERROR          /* internal failure */
} ngx_http_agentgov_store_rc_e;


/* The store of the current configuration, or NULL without agentgov_zone. */
ngx_http_agentgov_store_t *ngx_http_agentgov_store(ngx_http_request_t *r);


/* --- tasks ------------------------------------------------------------------ */

/*
 * Add a live task. Refused with SUSPENDED when its agent (or everyone) is
 * suspended, LIMIT when the agent already has max_tasks live tasks, FULL when
 * memory cannot be found even after dropping expired and ended tasks, and
 * NOT_LIVE when t->parent is set and that parent is no longer live (the
 * check and the insert are one atomic step).
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_add(
    ngx_http_agentgov_store_t *s, const ag_task_t *t, ngx_uint_t max_tasks,
    int64_t now);

/*
 * Copy task `id` into *t, its strings into buf (AG_TASK_* bounds: 8 KiB is
 * always enough). A live task past its expiry is reported with state
 * AG_TASK_EXPIRED. NOT_FOUND if there is no such task.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_get(
    ngx_http_agentgov_store_t *s, ag_str_t id, ag_task_t *t, u_char *buf,
    size_t len, int64_t now);

/* The same, after checking in the same look that `agent` may act:
   SUSPENDED when it (or everyone) is suspended. */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_use(
    ngx_http_agentgov_store_t *s, ag_str_t agent, ag_str_t id, ag_task_t *t,
    u_char *buf, size_t len, int64_t now);

/* Set a live task's expiry. NOT_LIVE if it is not live (or has expired). */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_renew(
    ngx_http_agentgov_store_t *s, ag_str_t id, int64_t expires, int64_t now);

/*
 * End (AG_TASK_ENDED) or revoke (AG_TASK_REVOKED) a live task and every live
 * descendant. *count gets how many tasks changed (may be NULL). NOT_LIVE if
 * the task itself was not live.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_end(
    ngx_http_agentgov_store_t *s, ag_str_t id, ag_task_state_t state,
    int64_t now, ngx_uint_t *count);

/*
 * Spend one forwarded call of the task's budget (ag_task_budget_spend under
 * the lock). EXHAUSTED with *retry_after; NOT_LIVE if the task is not live.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_spend(
    ngx_http_agentgov_store_t *s, ag_str_t id, const ag_intent_t *intent,
    int64_t now_ms, int64_t *retry_after);

/*
 * The tasks of `agent` (all agents when agent is empty), in a stable order,
 * after the task id `cursor` (empty: from the start), at most `limit`:
 * handler is called once per task (its strings valid during the call only);
 * *next gets the id to continue from (empty when the list is complete;
 * AG_TASK_ID_LEN + 1 bytes).
 * `state` < 0 means any state.
 */
typedef void (*ngx_http_agentgov_task_pt)(void *data, const ag_task_t *t);

ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_task_list(
    ngx_http_agentgov_store_t *s, ag_str_t agent, int state, ag_str_t cursor,
    ngx_uint_t limit, int64_t now, ngx_http_agentgov_task_pt handler,
    void *data, u_char *next);


/* --- the kill switch ------------------------------------------------------- */

/*
 * Suspend (on = 1) or resume (on = 0) an agent. Suspending revokes all its
 * live tasks (and their descendants); *count gets how many.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_agent_suspend(
    ngx_http_agentgov_store_t *s, ag_str_t agent, ngx_uint_t on, int64_t now,
    ngx_uint_t *count);

/* Stop (on = 1) or start (on = 0) every agent at once; stopping revokes every
   live task. */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_stop(
    ngx_http_agentgov_store_t *s, ngx_uint_t on, int64_t now,
    ngx_uint_t *count);

/* Whether the agent may act: OK, or SUSPENDED (it, or everyone). */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_agent_check(
    ngx_http_agentgov_store_t *s, ag_str_t agent);


/* --- holds (SPEC section 6) ----------------------------------------------- */

/* A hold's strings, in this order (ngx_http_agentgov_hold_t.str). */
enum {
    NGX_HTTP_AGENTGOV_H_ID = 0,
    NGX_HTTP_AGENTGOV_H_AGENT,
    NGX_HTTP_AGENTGOV_H_OWNER,
    NGX_HTTP_AGENTGOV_H_TASK,
    NGX_HTTP_AGENTGOV_H_INTENT,
    NGX_HTTP_AGENTGOV_H_CHAIN,
    NGX_HTTP_AGENTGOV_H_TOOL,
    NGX_HTTP_AGENTGOV_H_METHOD,
    NGX_HTTP_AGENTGOV_H_HOST,
    NGX_HTTP_AGENTGOV_H_PATH,
    NGX_HTTP_AGENTGOV_H_RULES,      /* the hold rules' ids, comma-joined */
    NGX_HTTP_AGENTGOV_H_REASON,
    NGX_HTTP_AGENTGOV_H_VALUES,     /* what the rules read (JSON object) */
    NGX_HTTP_AGENTGOV_H_PREVIEW,    /* the body's first 2 KiB, redacted */
    NGX_HTTP_AGENTGOV_H_DIGEST,     /* of the whole call: async grants */
    NGX_HTTP_AGENTGOV_H_DECISION,   /* the deciding person's reason */
    NGX_HTTP_AGENTGOV_H_N
};

#define NGX_HTTP_AGENTGOV_HOLD_BUF     16384   /* every string of a hold */

typedef struct {
    ag_str_t                         str[NGX_HTTP_AGENTGOV_H_N];
    ngx_pid_t                        pid;        /* the worker holding it */
    int64_t                          requested;
    int64_t                          expires;
    int64_t                          closed;     /* when it left pending */
    int64_t                          grant_ttl;  /* async: seconds after
                                                    approval; 0: not async */
    ngx_uint_t                       used;       /* async: its grant was */
    ag_hold_t                        votes;      /* state and decisions */
} ngx_http_agentgov_hold_t;

/* Add a pending hold. LIMIT when the agent has max_pending pending ones. */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_hold_add(
    ngx_http_agentgov_store_t *s, const ngx_http_agentgov_hold_t *h,
    ngx_uint_t max_pending, int64_t now);

/* Copy hold `id` into *h, its strings into buf (NGX_HTTP_AGENTGOV_HOLD_BUF
   is enough). NOT_FOUND. */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_hold_get(
    ngx_http_agentgov_store_t *s, ag_str_t id, ngx_http_agentgov_hold_t *h,
    u_char *buf, size_t len);

/*
 * Run handler under the lock on hold `id`'s decisions (it may change them
 * and the decision reason it is given room for, NGX_HTTP_AGENTGOV_H_DECISION
 * at most 512 bytes); a hold that leaves pending gets its closing time and
 * bumps the decision counter every worker watches. NOT_FOUND, or the
 * handler's result.
 */
typedef ngx_int_t (*ngx_http_agentgov_hold_pt)(void *data,
    const ngx_http_agentgov_hold_t *h, ag_hold_t *votes, u_char *reason,
    size_t *reason_len);

/*
 * Use an async hold's grant, once (SPEC section 6): OK when it is approved,
 * for this agent and task and digest, not used, and within grant_ttl of
 * its approval; then it is used. NOT_FOUND, or NOT_LIVE for every other
 * reason (the caller refuses the same way whatever it was).
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_hold_grant(
    ngx_http_agentgov_store_t *s, ag_str_t id, ag_str_t agent, ag_str_t task,
    ag_str_t digest, int64_t now);

ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_hold_update(
    ngx_http_agentgov_store_t *s, ag_str_t id,
    ngx_http_agentgov_hold_pt handler, void *data, int64_t now,
    ngx_int_t *result);

/* The decision counter: it changes whenever a hold leaves pending. */
ngx_uint_t ngx_http_agentgov_store_hold_counter(ngx_http_agentgov_store_t *s);

/*
 * The holds that left pending since the counter was `seen`: handler is
 * called once per id, outside the lock. Returns the counter value they
 * bring `seen` to, or NGX_HTTP_AGENTGOV_CLOSED_LOST when more closed than
 * the store remembers (the caller looks at every hold it has instead).
 */
#define NGX_HTTP_AGENTGOV_CLOSED_LOST  ((ngx_uint_t) -1)

typedef void (*ngx_http_agentgov_closed_pt)(void *data, ag_str_t id);

ngx_uint_t ngx_http_agentgov_store_hold_closed(ngx_http_agentgov_store_t *s,
    ngx_uint_t seen, ngx_http_agentgov_closed_pt handler, void *data);

/* Each hold (state < 0: any), newest first, at most limit; strings valid
   during the call only. */
typedef void (*ngx_http_agentgov_holds_pt)(void *data,
    const ngx_http_agentgov_hold_t *h);

void ngx_http_agentgov_store_hold_list(ngx_http_agentgov_store_t *s,
    int state, ngx_uint_t limit, ngx_http_agentgov_holds_pt handler,
    void *data);

/* Each hold cancelled because no worker was left to close it, once, so
   that the caller writes its audit record (handler under the lock: copy
   only). */
void ngx_http_agentgov_store_hold_unrecorded(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_holds_pt handler, void *data);


/*
 * MCP (SPEC section 6): the newest async hold of this agent and task whose
 * digest is `digest`. OK when it is approved, unused and within grant_ttl:
 * it is used now. NOT_LIVE when it is still pending. Both copy its id into
 * id (AG_TASK_ID_LEN bytes). NOT_FOUND otherwise.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_hold_find(
    ngx_http_agentgov_store_t *s, ag_str_t agent, ag_str_t task,
    ag_str_t digest, int64_t now, u_char *id);


/* --- MCP sessions and tool pins (SPEC sections 2 and 5) ------------------ */

#define NGX_HTTP_AGENTGOV_SESSION_MAX  256     /* bytes of an Mcp-Session-Id */

/*
 * Bind an Mcp-Session-Id the tool gave to the agent and task whose
 * initialize it answered, until `expires`. OK (also when it is bound to
 * them already), NOT_LIVE when it is bound to another agent or task, FULL.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_session_bind(
    ngx_http_agentgov_store_t *s, ag_str_t session, ag_str_t agent,
    ag_str_t task, int64_t expires, int64_t now);

/* OK when the session is bound to this agent and task, NOT_LIVE when to
   others, NOT_FOUND when to none (or no longer). */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_session_check(
    ngx_http_agentgov_store_t *s, ag_str_t session, ag_str_t agent,
    ag_str_t task, int64_t now);

typedef enum {
    NGX_HTTP_AGENTGOV_PIN_SAME = 0,     /* the pinned definition */
    NGX_HTTP_AGENTGOV_PIN_NEW,          /* first seen: pinned now */
    NGX_HTTP_AGENTGOV_PIN_CHANGED,      /* differs from the pin, seen first
                                           now: audit it */
    NGX_HTTP_AGENTGOV_PIN_STILL_CHANGED /* differs, seen before */
} ngx_http_agentgov_pin_e;

/*
 * A tool definition seen in tools/list: compare its digest with the pin
 * of (tool, name), pinning it when there is none (the policy's pin when it
 * has one, else this digest). *result says which.
 */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_pin_see(
    ngx_http_agentgov_store_t *s, ag_str_t tool, ag_str_t name,
    ag_str_t digest, ag_str_t policy_pin, ngx_http_agentgov_pin_e *result);

/* Whether calls of (tool, name) are refused: OK when a definition other
   than the pinned one was the last seen (tool_changed), NOT_FOUND when not. */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_pin_changed(
    ngx_http_agentgov_store_t *s, ag_str_t tool, ag_str_t name);

/* An admin accepts a definition: digest becomes the pin of (tool, name)
   (created if needed), and the change, if it was this one, is over. */
ngx_http_agentgov_store_rc_e ngx_http_agentgov_store_pin_accept(
    ngx_http_agentgov_store_t *s, ag_str_t tool, ag_str_t name,
    ag_str_t digest);

/* Each pin of a tool: name, pinned digest, the changed digest seen (empty
   when none); strings valid during the call only. */
typedef void (*ngx_http_agentgov_pins_pt)(void *data, ag_str_t name,
    ag_str_t pinned, ag_str_t seen);

void ngx_http_agentgov_store_pin_list(ngx_http_agentgov_store_t *s,
    ag_str_t tool, ngx_http_agentgov_pins_pt handler, void *data);


/* --- the audit chain head and the metrics -------------------------------- */

#define NGX_HTTP_AGENTGOV_CHECKPOINT_MAX   4096   /* the latest checkpoint line */

/*
 * The head of the one audit chain all workers append to: its last record,
 * the file that record went to (so that a worker still writing to a rotated
 * file notices the new one), failures, and checkpoint bookkeeping. Read and
 * changed only inside ngx_http_agentgov_store_audit's handler.
 */
typedef struct {
    ngx_uint_t                       ready;      /* seq and hash are known */
    ngx_uint_t                       broken;     /* a partial write stayed:
                                                    appending would corrupt
                                                    the chain until restart */
    uint64_t                         seq;
    u_char                           hash[64];
    u_char                           restart_hash[64];
    dev_t                            dev;
    ino_t                            ino;

    ngx_uint_t                       failing;
    time_t                           failure_logged;
    uint64_t                         records;    /* written since the zone
                                                    was created */
    uint64_t                         failures;
    uint64_t                         writes;     /* write()s that carried
                                                    them (group commit) */

    uint64_t                         cp_seq;     /* last record checkpointed */
    time_t                           cp_time;
    uint64_t                         checkpoints;
    size_t                           cp_len;
    u_char                           cp_line[NGX_HTTP_AGENTGOV_CHECKPOINT_MAX];
} ngx_http_agentgov_audit_head_t;


/* Decisions the metrics count, by tool (SPEC section 8). */
typedef enum {
    NGX_HTTP_AGENTGOV_D_ALLOW = 0,
    NGX_HTTP_AGENTGOV_D_DENY,
    NGX_HTTP_AGENTGOV_D_HOLD,
    NGX_HTTP_AGENTGOV_D_MONITOR_DENY,
    NGX_HTTP_AGENTGOV_D_MONITOR_HOLD,
    NGX_HTTP_AGENTGOV_D_APPROVED,
    NGX_HTTP_AGENTGOV_D_DENIED,
    NGX_HTTP_AGENTGOV_D_EXPIRED,
    NGX_HTTP_AGENTGOV_D_CANCELLED,
    NGX_HTTP_AGENTGOV_D_N
} ngx_http_agentgov_decision_e;

#define NGX_HTTP_AGENTGOV_METRIC_TOOLS     128    /* then "other" */
#define NGX_HTTP_AGENTGOV_METRIC_NAME      64
#define NGX_HTTP_AGENTGOV_METRIC_CODES     24
#define NGX_HTTP_AGENTGOV_METRIC_BUCKETS   12     /* the last is +Inf */

typedef struct {
    u_char                           len;        /* 0: free */
    u_char                           name[NGX_HTTP_AGENTGOV_METRIC_NAME];
    uint64_t                         n[NGX_HTTP_AGENTGOV_D_N];
} ngx_http_agentgov_metric_tool_t;

typedef struct {
    /* slot 0 counts calls refused before a tool was known; the last slot
       every tool past the table's size */
    ngx_http_agentgov_metric_tool_t  tools[NGX_HTTP_AGENTGOV_METRIC_TOOLS + 2];
    uint64_t                         codes[NGX_HTTP_AGENTGOV_METRIC_CODES];
    uint64_t                         buckets[NGX_HTTP_AGENTGOV_METRIC_BUCKETS];
    uint64_t                         latency_sum_us;
    uint64_t                         latency_count;
} ngx_http_agentgov_metrics_t;

/* One decision to count: tool may be empty; code indexes the refusal codes
   of ngx_http_agentgov_metric_codes (or -1), latency_us < 0: not timed. */
typedef struct {
    ag_str_t                         tool;
    ngx_int_t                        decision;   /* -1: none */
    ngx_int_t                        code;
    int64_t                          latency_us;
} ngx_http_agentgov_count_t;

extern const char *ngx_http_agentgov_metric_codes[];
extern const int64_t ngx_http_agentgov_metric_bounds[];  /* bucket bounds, us */

/*
 * Run handler under the store's lock with the audit chain head (the one
 * place the chain's order is decided: the handler seals and writes there),
 * and count the nc decisions c under the same lock. `master`: the caller is the
 * master process, which must not wait forever for a lock a dead worker may
 * hold. Returns the handler's result, or NGX_BUSY if the lock was not had.
 */
typedef ngx_int_t (*ngx_http_agentgov_audit_pt)(void *data,
    ngx_http_agentgov_audit_head_t *head);

ngx_int_t ngx_http_agentgov_store_audit(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_audit_pt handler, void *data,
    const ngx_http_agentgov_count_t *c, ngx_uint_t nc, ngx_uint_t master);

/* Count a decision without an audit record. */
void ngx_http_agentgov_store_count(ngx_http_agentgov_store_t *s,
    const ngx_http_agentgov_count_t *c);

/* Copies of the metrics and the audit head (for the metrics and health
   endpoints and the checkpoint API). Either may be NULL. */
void ngx_http_agentgov_store_observe(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_metrics_t *m, ngx_http_agentgov_audit_head_t *head);


/* --- figures ---------------------------------------------------------------- */

typedef struct {
    ngx_uint_t   live_tasks;
    ngx_uint_t   pending_holds;
    ngx_uint_t   suspended_agents;
    ngx_uint_t   stopped;
    double       used;           /* fraction of the zone in use, 0..1 */
} ngx_http_agentgov_store_stats_t;

void ngx_http_agentgov_store_stats(ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_store_stats_t *st);

/* Whether the last write of agentgov_state failed (health: state is not
   being persisted). 0 without agentgov_state. */
ngx_uint_t ngx_http_agentgov_store_state_failing(
    ngx_http_agentgov_store_t *s);


/* --- wiring (ngx_agentgov_module.c) -------------------------------------- */

/*
 * From the module's init_process: writes agentgov_state if the zone holds
 * what the file does not (no file yet at start, or a reload changed its
 * path), so that a restart right after loses nothing, and arms the
 * worker's save timer (cancelable) for the changes that do not wait for
 * the disk.
 */
ngx_int_t ngx_http_agentgov_store_init_process(ngx_cycle_t *cycle);

/* From the module's exit_process: writes what is still unsaved. */
void ngx_http_agentgov_store_exit_process(ngx_cycle_t *cycle);

/* From the main conf's init: "agentgov_state" requires "agentgov_zone". */
char *ngx_http_agentgov_zone_check_conf(ngx_conf_t *cf, void *conf);

#endif /* NGX_HTTP_AGENTGOV_STORE_H */
