/*
 * Declarations shared by the nginx glue of agentgov: configuration, the
 * per-request context and the functions one glue file offers the others.
 */

#ifndef NGX_HTTP_AGENTGOV_H
#define NGX_HTTP_AGENTGOV_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ag_call.h"
#include "ag_policy.h"
#include "ag_jwt.h"
#include "ag_spiffe.h"
#include "ag_task.h"
#include "ag_mcp.h"


#define NGX_HTTP_AGENTGOV_OFF      0
#define NGX_HTTP_AGENTGOV_ON       1
#define NGX_HTTP_AGENTGOV_MONITOR  2


/* agentgov_audit_log */
typedef struct {
    ngx_str_t            path;
    ngx_open_file_t     *file;
    struct ag_audit_key_s *key;
    ngx_uint_t           fail_open;
} ngx_http_agentgov_audit_conf_t;


typedef struct {
    ngx_str_t            policy_file;
    ag_policy_t         *policy;
    ag_trust_t          *trust;          /* JWT issuers */
    ag_spiffe_trust_t   *spiffe;         /* SPIFFE trust domain bundles */
    ngx_str_t            audience;
    ngx_str_t            issuer;         /* iss of task tokens (agentgov_issuer) */
    ngx_flag_t           governed;       /* some location has agentgov on */

    EVP_PKEY            *signing_key;    /* agentgov_signing_key */
    char                 signing_kid[48];  /* its RFC 7638 thumbprint */
    EVP_PKEY            *next_key;       /* agentgov_signing_key ... next */
    char                 next_kid[48];
    unsigned char        task_key[32];   /* derived from it: task token MACs */

    ngx_shm_zone_t      *zone;           /* agentgov_zone */
    ngx_str_t            state_file;     /* agentgov_state */

    ngx_http_agentgov_audit_conf_t *audit;   /* agentgov_audit_log */

    ngx_msec_t           hold_timeout;   /* agentgov_hold_timeout */

    ngx_array_t         *secrets_conf;   /* agentgov_secret */
    struct ag_secrets_s *secrets;        /* the policy's patterns, compiled */
} ngx_http_agentgov_main_conf_t;


typedef struct {
    ngx_uint_t           mode;
    ngx_str_t            tool_name;
    const ag_tool_t     *tool;           /* resolved at merge */
    size_t               body_max;
} ngx_http_agentgov_loc_conf_t;


/* An answer the gateway gives instead of the tool's (SPEC section 9). */
typedef struct {
    ngx_uint_t           status;
    const char          *code;
    const char          *decision;       /* Agent-Decision */
    ngx_str_t            message;
    int64_t              retry_after;    /* seconds, for 429; 0: none */
} ngx_http_agentgov_refusal_t;


typedef struct ngx_http_agentgov_parked_s  ngx_http_agentgov_parked_t;

typedef struct {
    unsigned             started:1;      /* pre-body checks passed */
    unsigned             reading_body:1;
    unsigned             body_read:1;
    unsigned             decided:1;
    unsigned             forward_proxy:1;
    unsigned             passed:1;       /* the call goes on to its tool */
    unsigned             audited:1;      /* its call record is written */
    unsigned             injected:1;     /* the tool's credential is added */
    unsigned             secret_in_path:1;  /* never write the path down */
    unsigned             held:1;         /* parked until its hold closes */
    unsigned             approved:1;     /* its hold was approved */
    unsigned             audit_wait:1;   /* its record is to be written */
    unsigned             audit_failed:1; /* and could not be */

    ngx_int_t            rc;             /* the access handler's answer once decided */

    u_char               request_id[32];

    int64_t              started_us;     /* monotonic: the first access */
    int64_t              entered_us;     /* this pass of the handler */
    int64_t              busy_us;        /* earlier passes */
    u_char               args_sha256[64];  /* of the body, hex; or zeros */

    const ag_agent_t    *agent;
    const ag_tool_t     *tool;
    json_t              *claims;         /* verified JWT claims */
    u_char              *spiffe_id;      /* NUL-terminated, from the pool */
    u_char               cnf[64];        /* hex SHA-256 of the client
                                            certificate, when one proved the
                                            identity */
    unsigned             person:1;       /* control API: not an agent */

    unsigned             has_task:1;
    ag_task_t            task;           /* the call's live task */
    u_char              *task_buf;       /* its strings */
    json_t              *task_claims;    /* of its token */

    ngx_str_t            path;           /* relative, normalised */
    ngx_str_t            uri;            /* $agentgov_uri */
    json_t              *body;           /* parsed JSON body */
    ngx_str_t            raw_body;       /* as read: async grants' digest */

    ag_call_t            call;
    ag_decision_t        decision;

    ngx_str_t            decision_name;  /* $agentgov_decision */
    ngx_str_t            rule;           /* $agentgov_rule */

    ngx_array_t         *stripped;       /* of ag_str_t: names removed */
    ag_str_t            *findings;       /* "pattern:where:sha8" */
    ngx_uint_t           nfindings;
    ngx_str_t            cred_jti;       /* the minted credential's */
    int64_t              cred_exp;

    u_char               approval_id[AG_TASK_ID_LEN + 1];
    ngx_str_t            approval;       /* $agentgov_approval */
    ngx_http_agentgov_parked_t *parked;

    /* MCP tools (ngx_http_agentgov_mcp.c, ngx_http_agentgov_filter.c) */
    ag_mcp_body_t       *mcp;            /* the messages of a POST */
    ag_mcp_error_t      *mcp_error;      /* why they are malformed */
    ngx_int_t            mcp_refused;    /* the member a refusal is about;
                                            -1: every member */
    unsigned             mcp_http:1;     /* refuse in HTTP, not JSON-RPC */
    unsigned             mcp_list:1;     /* a tools/list among them */
    void                *filter;         /* the response filter's state */
} ngx_http_agentgov_ctx_t;


extern ngx_module_t  ngx_http_agentgov_module;


/* ngx_http_agentgov_access.c */
ngx_int_t ngx_http_agentgov_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_agentgov_subrequest_handler(ngx_http_request_t *r);
ngx_http_agentgov_ctx_t *ngx_http_agentgov_get_ctx(ngx_http_request_t *r);

/* ngx_http_agentgov_identity.c */
ngx_int_t ngx_http_agentgov_identify(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_uint_t api,
    ngx_http_agentgov_refusal_t *ref);
void ngx_http_agentgov_identity(ngx_http_agentgov_ctx_t *ctx,
    ag_identity_t *id);
ngx_int_t ngx_http_agentgov_identity_init_process(ngx_cycle_t *cycle);
void ngx_http_agentgov_identity_exit_process(ngx_cycle_t *cycle);

/* ngx_http_agentgov_task.c */
ngx_int_t ngx_http_agentgov_task_check(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_task_scope(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_task_spend(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_task_init_process(ngx_cycle_t *cycle);
void ngx_http_agentgov_task_exit_process(ngx_cycle_t *cycle);

/* ngx_http_agentgov_respond.c */
ngx_int_t ngx_http_agentgov_refuse(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_table_elt_t *ngx_http_agentgov_find_header(ngx_http_request_t *r,
    const char *name, size_t len, ngx_uint_t *count);
void ngx_http_agentgov_json_cleanup(void *data);
ngx_int_t ngx_http_agentgov_refuse_content(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message);
ngx_int_t ngx_http_agentgov_refusal(ngx_http_agentgov_refusal_t *ref,
    ngx_uint_t status, const char *code, const char *message);

/* ngx_http_agentgov_zone.c: the agentgov_zone and agentgov_state directives */
char *ngx_http_agentgov_zone_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_agentgov_state_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_agentgov_api.c: the agentgov_api directive (control API) */
char *ngx_http_agentgov_api_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_agentgov_api_check(ngx_conf_t *cf);
ngx_int_t ngx_http_agentgov_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *json);   /* does not take the reference */
ngx_int_t ngx_http_agentgov_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *data, size_t len);
ngx_int_t ngx_http_agentgov_query(ngx_http_request_t *r, ngx_str_t *keys,
    ngx_uint_t n, ngx_str_t *v, ngx_str_t *bad);

/* ngx_http_agentgov_observe.c: metrics, health, the audit log's API */
ngx_int_t ngx_http_agentgov_metrics(ngx_http_request_t *r);
ngx_int_t ngx_http_agentgov_health(ngx_http_request_t *r);
ngx_int_t ngx_http_agentgov_audit_list(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);
ngx_int_t ngx_http_agentgov_audit_checkpoint(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);

/* ngx_http_agentgov_audit.c */
struct ag_audit_rec_s;
char *ngx_http_agentgov_audit_log_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_agentgov_audit_check_conf(ngx_conf_t *cf,
    ngx_http_agentgov_main_conf_t *amcf);
ngx_int_t ngx_http_agentgov_audit_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_agentgov_audit_init_process(ngx_cycle_t *cycle);
void ngx_http_agentgov_audit_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_agentgov_audit_call(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_audit_call_later(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_audit_log_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_agentgov_audit_event(ngx_http_request_t *r,
    struct ag_audit_rec_s *rec);
int64_t ngx_http_agentgov_monotonic_us(void);

/* ngx_http_agentgov_credential.c */
char *ngx_http_agentgov_secret_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_agentgov_jwks_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_agentgov_credential_check_conf(ngx_conf_t *cf,
    ngx_http_agentgov_main_conf_t *amcf);
ngx_int_t ngx_http_agentgov_credential_init_process(ngx_cycle_t *cycle);
void ngx_http_agentgov_credential_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_agentgov_scan(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *body,
    ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_strip(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);
ngx_int_t ngx_http_agentgov_inject(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);

/* ngx_http_agentgov_hold.c */
ngx_int_t ngx_http_agentgov_hold_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_agentgov_hold(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_hold_outcome(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_hold_filter_init(ngx_conf_t *cf);
void ngx_http_agentgov_hold_poke(void);
void ngx_http_agentgov_audit_approval(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, const char *decision, ngx_str_t *approver,
    ngx_str_t *reason);

/* ngx_http_agentgov_approvals.c */
ngx_int_t ngx_http_agentgov_approvals_get(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *hold_id, ag_identity_t *id,
    ngx_uint_t all);
ngx_int_t ngx_http_agentgov_approvals_post(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *hold_id, ag_identity_t *id,
    ngx_str_t *who, json_t *body);

/* ngx_http_agentgov_mcp.c */
ngx_int_t ngx_http_agentgov_mcp_parse(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *body,
    ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_mcp_eval(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_mcp_refuse(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
ngx_uint_t ngx_http_agentgov_mcp_status(ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref);
ngx_int_t ngx_http_agentgov_mcp_pins(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *tool, ngx_str_t *who,
    json_t *body);

/* ngx_http_agentgov_filter.c */
ngx_int_t ngx_http_agentgov_filter_init(ngx_conf_t *cf);

/* ngx_http_agentgov_variables.c */
ngx_int_t ngx_http_agentgov_add_variables(ngx_conf_t *cf);

#endif /* NGX_HTTP_AGENTGOV_H */
