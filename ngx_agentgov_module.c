/*
 * agentgov: the module definition, its directives, configuration and the
 * registration of its phase handlers and variables. Request handling lives in
 * src/http/, policy logic in src/core/.
 */

#include <openssl/crypto.h>

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"


static ngx_int_t ngx_http_agentgov_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_agentgov_init_process(ngx_cycle_t *cycle);
static void ngx_http_agentgov_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_agentgov_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_agentgov_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_agentgov_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_agentgov_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_agentgov_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_agentgov_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_agentgov_trust(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_agentgov_signing_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_agentgov_signing_key_cleanup(void *data);
static void ngx_http_agentgov_pkey_cleanup(void *data);
static void ngx_http_agentgov_policy_cleanup(void *data);
static void ngx_http_agentgov_trust_cleanup(void *data);
static void ngx_http_agentgov_spiffe_cleanup(void *data);


static ngx_conf_enum_t  ngx_http_agentgov_modes[] = {
    { ngx_string("off"), NGX_HTTP_AGENTGOV_OFF },
    { ngx_string("on"), NGX_HTTP_AGENTGOV_ON },
    { ngx_string("monitor"), NGX_HTTP_AGENTGOV_MONITOR },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_agentgov_commands[] = {

    { ngx_string("agentgov_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_agentgov_policy,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_trust"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_agentgov_trust,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_audience"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_agentgov_main_conf_t, audience),
      NULL },

    { ngx_string("agentgov_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_agentgov_main_conf_t, issuer),
      NULL },

    { ngx_string("agentgov_signing_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_agentgov_signing_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_agentgov_zone_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_agentgov_audit_log_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_state"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_agentgov_state_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_agentgov_loc_conf_t, mode),
      &ngx_http_agentgov_modes },

    { ngx_string("agentgov_tool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_agentgov_loc_conf_t, tool_name),
      NULL },

    { ngx_string("agentgov_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_agentgov_loc_conf_t, body_max),
      NULL },

    { ngx_string("agentgov_hold_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_agentgov_main_conf_t, hold_timeout),
      NULL },

    { ngx_string("agentgov_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_agentgov_secret_conf,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_jwks"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_agentgov_jwks_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("agentgov_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_agentgov_api_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_agentgov_module_ctx = {
    ngx_http_agentgov_preconfiguration,    /* preconfiguration */
    ngx_http_agentgov_postconfiguration,   /* postconfiguration */

    ngx_http_agentgov_create_main_conf,    /* create main configuration */
    ngx_http_agentgov_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_agentgov_create_loc_conf,     /* create location configuration */
    ngx_http_agentgov_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_agentgov_module = {
    NGX_MODULE_V1,
    &ngx_http_agentgov_module_ctx,         /* module context */
    ngx_http_agentgov_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_agentgov_audit_init_module,   /* init module */
    ngx_http_agentgov_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_agentgov_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* per-worker caches of verified tokens; the state file's first write */

static ngx_int_t
ngx_http_agentgov_init_process(ngx_cycle_t *cycle)
{
    if (ngx_http_agentgov_identity_init_process(cycle) != NGX_OK
        || ngx_http_agentgov_store_init_process(cycle) != NGX_OK
        || ngx_http_agentgov_audit_init_process(cycle) != NGX_OK
        || ngx_http_agentgov_credential_init_process(cycle) != NGX_OK
        || ngx_http_agentgov_hold_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_agentgov_task_init_process(cycle);
}


static void
ngx_http_agentgov_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_audit_exit_process(cycle);
    ngx_http_agentgov_credential_exit_process(cycle);
    ngx_http_agentgov_identity_exit_process(cycle);
    ngx_http_agentgov_task_exit_process(cycle);
    ngx_http_agentgov_store_exit_process(cycle);
}


static ngx_int_t
ngx_http_agentgov_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_agentgov_add_variables(cf);
}


static ngx_int_t
ngx_http_agentgov_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_agentgov_access_handler;

    /*
     * Subrequests skip the access phase (ngx_http_core_access_phase), so a
     * governed location refuses them one phase earlier, where they do run.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_agentgov_subrequest_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_agentgov_audit_log_handler;

    if (ngx_http_agentgov_hold_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_agentgov_filter_init(cf);
}


static void *
ngx_http_agentgov_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_agentgov_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     amcf->policy_file = { 0, NULL };
     *     amcf->policy = NULL;
     *     amcf->trust = NULL;
     *     amcf->spiffe = NULL;
     *     amcf->audience = { 0, NULL };
     */

    amcf->governed = NGX_CONF_UNSET;
    amcf->hold_timeout = NGX_CONF_UNSET_MSEC;

    return amcf;
}


static char *
ngx_http_agentgov_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_agentgov_main_conf_t  *amcf = conf;

    if (amcf->audience.data == NULL) {
        ngx_str_set(&amcf->audience, "agentgov");
    }

    if (amcf->issuer.data == NULL) {
        ngx_str_set(&amcf->issuer, "agentgov");
    }

    if (amcf->governed == NGX_CONF_UNSET) {
        amcf->governed = 0;
    }

    if (amcf->hold_timeout == NGX_CONF_UNSET_MSEC) {
        amcf->hold_timeout = 15 * 60 * 1000;
    }

    if (ngx_http_agentgov_audit_check_conf(cf, amcf) != NGX_CONF_OK
        || ngx_http_agentgov_credential_check_conf(cf, amcf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_agentgov_zone_check_conf(cf, conf);
}


static void *
ngx_http_agentgov_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_agentgov_loc_conf_t  *alcf;

    alcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_agentgov_loc_conf_t));
    if (alcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     alcf->tool_name = { 0, NULL };
     *     alcf->tool = NULL;
     */

    alcf->mode = NGX_CONF_UNSET_UINT;
    alcf->body_max = NGX_CONF_UNSET_SIZE;

    return alcf;
}


static char *
ngx_http_agentgov_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_agentgov_loc_conf_t *prev = parent;
    ngx_http_agentgov_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_agentgov_main_conf_t  *amcf;

    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_HTTP_AGENTGOV_OFF);
    ngx_conf_merge_str_value(conf->tool_name, prev->tool_name, "");
    ngx_conf_merge_size_value(conf->body_max, prev->body_max, 1024 * 1024);

    if (ngx_http_agentgov_api_check(cf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->mode == NGX_HTTP_AGENTGOV_OFF) {
        return NGX_CONF_OK;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_agentgov_module);

    if (amcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentgov\" is enabled but no \"agentgov_policy\" "
                           "is set in the http block");
        return NGX_CONF_ERROR;
    }

    amcf->governed = 1;

    /* every governed call is made inside a task (SPEC section 4) */

    if (amcf->zone == NULL || amcf->signing_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentgov\" needs \"agentgov_zone\" and "
                           "\"agentgov_signing_key\" in the http block: "
                           "calls are made inside declared tasks");
        return NGX_CONF_ERROR;
    }

    /*
     * Under "satisfy any" another access module's allow would let a call
     * through that agentgov refused (ngx_http_core_access_phase).
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->satisfy == NGX_HTTP_SATISFY_ANY) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"satisfy any\" cannot be used in a location "
                           "governed by \"agentgov\"");
        return NGX_CONF_ERROR;
    }

    if (conf->tool_name.len) {
        conf->tool = ag_policy_tool(amcf->policy,
                                    (const char *) conf->tool_name.data,
                                    conf->tool_name.len);
        if (conf->tool == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "agentgov_tool \"%V\": no such tool in "
                               "policy \"%V\"", &conf->tool_name,
                               &amcf->policy_file);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * The policy is compiled here, in the master, while the configuration is read:
 * a broken policy fails "nginx -t" and a reload keeps the running policy. The
 * workers inherit the compiled policy read-only.
 */

static char *
ngx_http_agentgov_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    char                 err[512];
    ngx_str_t           *value, name;
    ngx_pool_cleanup_t  *cln;

    if (amcf->policy != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->policy = ag_policy_load_file((const char *) name.data, err,
                                       sizeof(err));
    if (amcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "agentgov_policy \"%V\": %s",
                           &name, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_agentgov_policy_cleanup;
    cln->data = amcf->policy;

    amcf->policy_file = name;

    return NGX_CONF_OK;
}


/*
 * agentgov_trust ISSUER JWKS_FILE          an issuer of agent and people JWTs
 * agentgov_trust spiffe://DOMAIN PEM_FILE  a SPIFFE trust domain's CA bundle
 */

static char *
ngx_http_agentgov_trust(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    char                 err[512];
    u_char              *issuer;
    ag_jwks_t           *jwks;
    ngx_str_t           *value, file;
    ngx_pool_cleanup_t  *cln;

    value = cf->args->elts;
    file = value[2];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    issuer = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (issuer == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(issuer, value[1].data, value[1].len + 1);

    if (value[1].len > 9
        && ngx_strncmp(value[1].data, "spiffe://", 9) == 0)
    {
        if (amcf->spiffe == NULL) {
            cln = ngx_pool_cleanup_add(cf->pool, 0);
            if (cln == NULL) {
                return NGX_CONF_ERROR;
            }

            amcf->spiffe = ag_spiffe_trust_new();
            if (amcf->spiffe == NULL) {
                return NGX_CONF_ERROR;
            }

            cln->handler = ngx_http_agentgov_spiffe_cleanup;
            cln->data = amcf->spiffe;
        }

        if (ag_spiffe_trust_add(amcf->spiffe, (const char *) issuer,
                                (const char *) file.data, err, sizeof(err))
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "agentgov_trust \"%V\" \"%V\": %s",
                               &value[1], &file, err);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (amcf->trust == NULL) {
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        amcf->trust = ag_trust_new();
        if (amcf->trust == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_agentgov_trust_cleanup;
        cln->data = amcf->trust;
    }

    jwks = ag_jwks_load((const char *) file.data, err, sizeof(err));
    if (jwks == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_trust \"%V\" \"%V\": %s",
                           &value[1], &file, err);
        return NGX_CONF_ERROR;
    }

    if (ag_trust_add(amcf->trust, (const char *) issuer, jwks, err,
                     sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "agentgov_trust \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * agentgov_signing_key FILE: the gateway's Ed25519 or P-256 private key. Task
 * tokens are authenticated with a MAC key derived from it, so gateways that
 * share the key accept each other's tokens.
 */

/*
 * agentgov_signing_key FILE [next]: the key that signs task tokens, minted
 * credentials and checkpoints; with "next", the key that will: it is only
 * published (agentgov_jwks) so that tools trust it before it signs.
 */

static char *
ngx_http_agentgov_signing_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    char                 err[512], *kid;
    const char          *alg;
    EVP_PKEY            *key, **slot;
    ngx_str_t           *value, name;
    ngx_pool_cleanup_t  *cln;

    value = cf->args->elts;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "next") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter "
                               "\"%V\": only \"next\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        slot = &amcf->next_key;
        kid = amcf->next_kid;

    } else {
        slot = &amcf->signing_key;
        kid = amcf->signing_kid;
    }

    if (*slot != NULL) {
        return "is duplicate";
    }

    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    key = ag_key_load_private((const char *) name.data, err, sizeof(err));
    if (key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_signing_key \"%V\": %s", &name, err);
        return NGX_CONF_ERROR;
    }

    *slot = key;

    if (slot == &amcf->next_key) {
        cln->handler = ngx_http_agentgov_pkey_cleanup;
        cln->data = key;

    } else {
        cln->handler = ngx_http_agentgov_signing_key_cleanup;
        cln->data = amcf;
    }

    alg = ag_key_alg(key);

    if (alg == NULL || ngx_strcmp(alg, "RS256") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_signing_key \"%V\": must be an Ed25519 "
                           "or P-256 key", &name);
        return NGX_CONF_ERROR;
    }

    if (ag_key_thumbprint(key, kid, sizeof(amcf->signing_kid)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_signing_key \"%V\": no thumbprint",
                           &name);
        return NGX_CONF_ERROR;
    }

    if (slot == &amcf->signing_key
        && ag_task_key_derive(key, amcf->task_key, err, sizeof(err)) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_signing_key \"%V\": %s", &name, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_agentgov_pkey_cleanup(void *data)
{
    EVP_PKEY_free(data);
}


static void
ngx_http_agentgov_signing_key_cleanup(void *data)
{
    ngx_http_agentgov_main_conf_t *amcf = data;

    EVP_PKEY_free(amcf->signing_key);
    amcf->signing_key = NULL;
    OPENSSL_cleanse(amcf->task_key, sizeof(amcf->task_key));
}


static void
ngx_http_agentgov_policy_cleanup(void *data)
{
    ag_policy_free(data);
}


static void
ngx_http_agentgov_trust_cleanup(void *data)
{
    ag_trust_free(data);
}


static void
ngx_http_agentgov_spiffe_cleanup(void *data)
{
    ag_spiffe_trust_free(data);
}
