/*
 * The credential broker (SPEC section 7): before an allowed call leaves, the
 * gateway's own headers and every key an agent sent are removed (headers
 * and query parameters), then the tool's credential is added: a JWT the
 * gateway mints per (task, tool), or a secret only the gateway holds
 * (agentgov_secret). agentgov_jwks publishes the keys that verify the JWTs.
 *
 * Headers: the proxy forwards every entry of r->headers_in.headers, so the
 * list is rebuilt without the removed ones, and the pointers headers_in
 * keeps to known headers (Authorization, Cookie, ...) are cleared when
 * their header went (NGINX-NOTES).
 *
 * Query: proxy_pass without a URI part sends r->unparsed_uri as it is, with
 * one it sends r->args, with variables whatever they say ($agentgov_uri is
 * ours): all three are rewritten.
 */

#include <sys/stat.h>

#include "ngx_http_agentgov.h"
#include "ag_cred.h"
#include "ag_secrets.h"
#include "ag_util.h"


#define NGX_HTTP_AGENTGOV_CRED_SLOTS      4096
#define NGX_HTTP_AGENTGOV_SECRET_MAX      8192
#define NGX_HTTP_AGENTGOV_STRIPPED_MAX    32


typedef struct {
    ngx_str_t            name;
    ngx_str_t            value;
} ngx_http_agentgov_secret_t;


static ngx_int_t ngx_http_agentgov_strip_headers(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_main_conf_t *amcf);
static ngx_int_t ngx_http_agentgov_strip_query(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_main_conf_t *amcf);
static ngx_int_t ngx_http_agentgov_stripped_add(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, u_char *name, size_t len);
static ngx_int_t ngx_http_agentgov_set_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
static ngx_int_t ngx_http_agentgov_format(ngx_http_request_t *r,
    const char *format, const char *placeholder, u_char *data, size_t len,
    ngx_str_t *out);
static ngx_int_t ngx_http_agentgov_jwks_handler(ngx_http_request_t *r);
static void ngx_http_agentgov_secret_cleanup(void *data);


/* per process: minted JWTs by (task, tool) */
static ag_credcache_t  *ngx_http_agentgov_credcache;


static ngx_str_t  ngx_http_agentgov_own_headers[] = {
    ngx_string("agent-authorization"),
    ngx_string("agent-task"),
    ngx_string("agent-approval"),
    ngx_null_string
};


/* --- configuration ------------------------------------------------------------- */

/* agentgov_secret NAME FILE: the file's content, read once, owner-only */

char *
ngx_http_agentgov_secret_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_agentgov_main_conf_t *amcf = conf;

    char                        *data, err[512];
    size_t                       len;
    ngx_str_t                   *value, file;
    ngx_uint_t                   i;
    struct stat                  st;
    ngx_pool_cleanup_t          *cln;
    ngx_http_agentgov_secret_t  *s;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > 128) {
        return "needs a name of 1 to 128 characters";
    }

    if (amcf->secrets_conf == NULL) {
        amcf->secrets_conf = ngx_array_create(cf->pool, 4,
                                          sizeof(ngx_http_agentgov_secret_t));
        if (amcf->secrets_conf == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    s = amcf->secrets_conf->elts;
    for (i = 0; i < amcf->secrets_conf->nelts; i++) {
        if (s[i].name.len == value[1].len
            && ngx_strncmp(s[i].name.data, value[1].data, value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate agentgov_secret \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    file = value[2];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (stat((const char *) file.data, &st) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "agentgov_secret \"%V\": cannot read \"%V\"",
                           &value[1], &file);
        return NGX_CONF_ERROR;
    }

    /* a secret only the gateway holds is readable by its owner only */
    if (st.st_mode & (S_IRWXG|S_IRWXO)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "agentgov_secret \"%V\": \"%V\" is accessible to "
                           "group or others (mode %03o): chmod 600 it",
                           &value[1], &file, (unsigned) (st.st_mode & 0777));
        return NGX_CONF_ERROR;
    }

    data = ag_read_file((const char *) file.data, NGX_HTTP_AGENTGOV_SECRET_MAX,
                        &len, err, sizeof(err));
    if (data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "agentgov_secret \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    /* a trailing newline is the editor's, not the secret's */
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r')) {
        len--;
    }

    s = ngx_array_push(amcf->secrets_conf);
    cln = ngx_pool_cleanup_add(cf->pool, 0);

    if (s == NULL || cln == NULL || len == 0) {
        ngx_explicit_memzero(data, len);
        free(data);

        if (len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "agentgov_secret \"%V\": \"%V\" is empty",
                               &value[1], &file);
        }

        return NGX_CONF_ERROR;
    }

    s->name = value[1];
    s->value.data = (u_char *) data;
    s->value.len = len;

    cln->handler = ngx_http_agentgov_secret_cleanup;
    cln->data = s;

    return NGX_CONF_OK;
}


static void
ngx_http_agentgov_secret_cleanup(void *data)
{
    ngx_http_agentgov_secret_t  *s = data;

    ngx_explicit_memzero(s->value.data, s->value.len);
    free(s->value.data);
    s->value.data = NULL;
}


static ngx_http_agentgov_secret_t *
ngx_http_agentgov_secret(ngx_http_agentgov_main_conf_t *amcf,
    const char *name)
{
    size_t                       len;
    ngx_uint_t                   i;
    ngx_http_agentgov_secret_t  *s;

    if (amcf->secrets_conf == NULL) {
        return NULL;
    }

    len = ngx_strlen(name);
    s = amcf->secrets_conf->elts;

    for (i = 0; i < amcf->secrets_conf->nelts; i++) {
        if (s[i].name.len == len
            && ngx_strncmp(s[i].name.data, name, len) == 0)
        {
            return &s[i];
        }
    }

    return NULL;
}


static void
ngx_http_agentgov_secrets_cleanup(void *data)
{
    ag_secrets_free(data);
}


/*
 * From the main conf's init: every secret a tool's credential names is
 * defined, and the secret patterns are compiled once for the policy.
 */

char *
ngx_http_agentgov_credential_check_conf(ngx_conf_t *cf,
    ngx_http_agentgov_main_conf_t *amcf)
{
    char                 err[512];
    ngx_uint_t           i, n;
    const ag_tool_t     *tool;
    ngx_pool_cleanup_t  *cln;

    if (amcf->policy == NULL) {
        return NGX_CONF_OK;
    }

    n = ag_policy_ntools(amcf->policy);

    for (i = 0; i < n; i++) {
        tool = ag_policy_tool_at(amcf->policy, i);

        if (tool->cred_type == AG_CRED_SECRET
            && ngx_http_agentgov_secret(amcf, tool->cred_secret) == NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "tool \"%s\" of the policy injects the secret "
                               "\"%s\": no \"agentgov_secret %s FILE\" "
                               "defines it", tool->name, tool->cred_secret,
                               tool->cred_secret);
            return NGX_CONF_ERROR;
        }

        if (tool->cred_type == AG_CRED_JWT && amcf->signing_key == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "tool \"%s\" of the policy has a jwt "
                               "credential: \"agentgov_signing_key\" is "
                               "needed to mint it", tool->name);
            return NGX_CONF_ERROR;
        }
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    amcf->secrets = ag_secrets_new(amcf->policy, err, sizeof(err));
    if (amcf->secrets == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "agentgov_policy \"%V\": %s",
                           &amcf->policy_file, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_agentgov_secrets_cleanup;
    cln->data = amcf->secrets;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_agentgov_credential_init_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_credcache = ag_credcache_new(
                                              NGX_HTTP_AGENTGOV_CRED_SLOTS);

    if (ngx_http_agentgov_credcache == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "agentgov: no memory for the credential cache");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_agentgov_credential_exit_process(ngx_cycle_t *cycle)
{
    ag_credcache_free(ngx_http_agentgov_credcache);
    ngx_http_agentgov_credcache = NULL;
}


/* --- scanning ------------------------------------------------------------------ */

/*
 * Secrets in the call (SPEC section 7): NGX_OK when clean, NGX_DECLINED
 * with the refusal (403 secret_in_request, or 503 when the scan itself
 * failed: what cannot be inspected does not pass). The findings go to the
 * ctx for the audit record: pattern names and hash prefixes only.
 */

ngx_int_t
ngx_http_agentgov_scan(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_str_t *body, ngx_http_agentgov_refusal_t *ref)
{
    int                             n, i;
    char                            err[256];
    u_char                         *p;
    ag_str_t                       *f;
    ag_finding_t                    found[AG_SECRETS_FINDINGS_MAX];
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (amcf->secrets == NULL) {
        return NGX_OK;
    }

    n = ag_secrets_scan(amcf->secrets, ctx->tool, &ctx->call,
                        body ? (const char *) body->data : NULL,
                        body ? body->len : 0, found, AG_SECRETS_FINDINGS_MAX,
                        err, sizeof(err));

    if (n == 0) {
        return NGX_OK;
    }

    if (n < 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "agentgov: the secret scan failed: %s", err);

        return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "the call could "
                                         "not be inspected for secrets");
    }

    ctx->findings = ngx_palloc(r->pool, n * sizeof(ag_str_t));
    if (ctx->findings == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        f = &ctx->findings[i];

        if (ngx_strcmp(found[i].where, "path") == 0) {
            ctx->secret_in_path = 1;
        }

        /* "<pattern>:<where>:<sha8>" */
        p = ngx_pnalloc(r->pool, ngx_strlen(found[i].pattern)
                                 + ngx_strlen(found[i].where) + 8 + 2);
        if (p == NULL) {
            return NGX_ERROR;
        }

        f->p = (const char *) p;
        f->len = ngx_sprintf(p, "%s:%s:%s", found[i].pattern, found[i].where,
                             found[i].sha8)
                 - p;
    }

    ctx->nfindings = n;

    /*
     * Not the request's log: its context adds the request line, and the
     * query there may hold the very secret. The request id names the call.
     */
    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "agentgov: request %*s: a secret in the call (%s in the "
                  "%s, SHA-256 %s...): refused", (size_t) 32, ctx->request_id,
                  found[0].pattern, found[0].where, found[0].sha8);

    return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                     "secret_in_request", "the call carries "
                                     "a secret (a key, a token or a private "
                                     "key): agents never send keys; the "
                                     "gateway adds the tool's credential");
}


/* --- stripping ---------------------------------------------------------------- */

/*
 * Remove the gateway's own headers and the keys an agent must not hold,
 * headers and query parameters, recording their names in the ctx.
 */

ngx_int_t
ngx_http_agentgov_strip(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx)
{
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (ngx_http_agentgov_strip_headers(r, ctx, amcf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_agentgov_strip_query(r, ctx, amcf);
}


static ngx_uint_t
ngx_http_agentgov_is_own(ngx_table_elt_t *h)
{
    ngx_str_t  *name;

    for (name = ngx_http_agentgov_own_headers; name->len; name++) {
        if (h->key.len == name->len
            && ngx_strncasecmp(h->key.data, name->data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* 0: kept; 1: the gateway's own (not recorded); 2: a key, stripped */

static ngx_uint_t
ngx_http_agentgov_strip_kind(ngx_http_agentgov_main_conf_t *amcf,
    const ag_tool_t *tool, ngx_table_elt_t *h)
{
    if (ngx_http_agentgov_is_own(h)) {
        return 1;
    }

    /* the gateway reads an MCP tool's answers (tools/list): uncompressed */
    if (tool && tool->mcp
        && h->key.len == sizeof("Accept-Encoding") - 1
        && ngx_strncasecmp(h->key.data, (u_char *) "Accept-Encoding",
                           h->key.len) == 0)
    {
        return 1;
    }

    if (amcf->policy && tool
        && ag_strip_header(amcf->policy, tool, (const char *) h->key.data,
                           h->key.len))
    {
        return 2;
    }

    return 0;
}


static ngx_int_t
ngx_http_agentgov_strip_headers(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_main_conf_t *amcf)
{
    u_char            **field;
    ngx_uint_t          i, n, gone, kind;
    ngx_list_t          old;
    ngx_list_part_t    *part;
    ngx_table_elt_t    *h, *copy, **known;
    ngx_http_header_t  *hh;

    n = 0;
    gone = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            n++;
            gone += ngx_http_agentgov_strip_kind(amcf, ctx->tool, &h[i]) != 0;
        }
    }

    if (gone == 0) {
        return NGX_OK;
    }

    /* iterate a copy of the old list while the new one takes its place;
       the copy's first part still links to the old later parts */
    old = r->headers_in.headers;

    if (ngx_list_init(&r->headers_in.headers, r->pool, n,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (part = &old.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            kind = ngx_http_agentgov_strip_kind(amcf, ctx->tool, &h[i]);

            if (kind == 0) {
                copy = ngx_list_push(&r->headers_in.headers);
                if (copy == NULL) {
                    return NGX_ERROR;
                }

                *copy = h[i];
                continue;
            }

            if (kind == 2
                && ngx_http_agentgov_stripped_add(r, ctx, h[i].key.data,
                                                  h[i].key.len)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            /* headers_in's own pointer to it ($http_*, other modules) */
            for (hh = ngx_http_headers_in; hh->name.len; hh++) {
                if (hh->name.len != h[i].key.len
                    || ngx_strncasecmp(hh->name.data, h[i].key.data,
                                       hh->name.len) != 0)
                {
                    continue;
                }

                if (hh->offset == offsetof(ngx_http_headers_in_t, cookies)) {
                    r->headers_in.cookies.nelts = 0;

                } else if (hh->offset) {
                    field = (u_char **) ((char *) &r->headers_in + hh->offset);
                    known = (ngx_table_elt_t **) field;
                    *known = NULL;
                }

                break;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_strip_query(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_main_conf_t *amcf)
{
    u_char      *kept, *p, *q;
    size_t       len, i, n, path;
    ag_str_t     removed[NGX_HTTP_AGENTGOV_STRIPPED_MAX];

    if (r->args.len == 0 || amcf->policy == NULL || ctx->tool == NULL) {
        return NGX_OK;
    }

    kept = ngx_pnalloc(r->pool, r->args.len);
    if (kept == NULL) {
        return NGX_ERROR;
    }

    n = ag_strip_query(amcf->policy, ctx->tool, (const char *) r->args.data,
                       r->args.len, (char *) kept, &len, removed,
                       NGX_HTTP_AGENTGOV_STRIPPED_MAX);
    if (n == 0) {
        return NGX_OK;
    }

    for (i = 0; i < n && i < NGX_HTTP_AGENTGOV_STRIPPED_MAX; i++) {
        if (ngx_http_agentgov_stripped_add(r, ctx, (u_char *) removed[i].p,
                                           removed[i].len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* proxy_pass without a URI part sends the unparsed URI as it is */
    if (r->valid_unparsed_uri) {
        p = ngx_strlchr(r->unparsed_uri.data,
                        r->unparsed_uri.data + r->unparsed_uri.len, '?');
        path = p ? (size_t) (p - r->unparsed_uri.data) : r->unparsed_uri.len;

        q = ngx_pnalloc(r->pool, path + 1 + len);
        if (q == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(q, r->unparsed_uri.data, path);

        if (len) {
            *p++ = '?';
            r->args.data = p;
            p = ngx_cpymem(p, kept, len);

        } else {
            r->args.data = p;
        }

        r->unparsed_uri.data = q;
        r->unparsed_uri.len = p - q;

    } else {
        r->args.data = kept;
    }

    r->args.len = len;

    /* $agentgov_uri: the path as before, the kept query */
    p = ngx_strlchr(ctx->uri.data, ctx->uri.data + ctx->uri.len, '?');
    path = p ? (size_t) (p - ctx->uri.data) : ctx->uri.len;

    q = ngx_pnalloc(r->pool, path + 1 + len);
    if (q == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(q, ctx->uri.data, path);

    if (len) {
        *p++ = '?';
        p = ngx_cpymem(p, kept, len);
    }

    ctx->uri.data = q;
    ctx->uri.len = p - q;

    return NGX_OK;
}


/* a name for the audit record and $agentgov_stripped (never a value) */

static ngx_int_t
ngx_http_agentgov_stripped_add(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, u_char *name, size_t len)
{
    ag_str_t    *s;
    ngx_uint_t   i;

    if (ctx->stripped == NULL) {
        ctx->stripped = ngx_array_create(r->pool, 4, sizeof(ag_str_t));
        if (ctx->stripped == NULL) {
            return NGX_ERROR;
        }
    }

    s = ctx->stripped->elts;
    for (i = 0; i < ctx->stripped->nelts; i++) {
        if (s[i].len == len
            && ngx_strncasecmp((u_char *) s[i].p, name, len) == 0)
        {
            return NGX_OK;
        }
    }

    s = ngx_array_push(ctx->stripped);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->p = (const char *) name;
    s->len = len;

    return NGX_OK;
}


/* --- injection ----------------------------------------------------------------- */

/*
 * The tool's credential into the request. NGX_OK (also for a tool without
 * one), NGX_DECLINED with a 503 refusal when it cannot be made: the call
 * never leaves without it.
 */

ngx_int_t
ngx_http_agentgov_inject(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    char                            err[256];
    ngx_str_t                       value;
    ag_str_t                        tool_name;
    ag_cred_t                       minted;
    const ag_cred_t                *c;
    const ag_tool_t                *tool;
    ngx_http_agentgov_secret_t     *s;
    ngx_http_agentgov_main_conf_t  *amcf;

    tool = ctx->tool;

    if (tool == NULL || tool->cred_type == AG_CRED_NONE) {
        return NGX_OK;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (tool->cred_type == AG_CRED_SECRET) {
        s = ngx_http_agentgov_secret(amcf, tool->cred_secret);

        if (s == NULL || s->value.data == NULL
            || ngx_http_agentgov_format(r, tool->cred_format, "{secret}",
                                        s->value.data, s->value.len, &value)
               != NGX_OK)
        {
            goto failed;
        }

        ctx->injected = 1;
        return ngx_http_agentgov_set_header(r, tool->cred_header, &value);
    }

    /* jwt: one per (task, tool), from the cache while it is fresh */

    if (!ctx->has_task || amcf->signing_key == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "agentgov: tool \"%s\": a jwt credential needs the "
                      "call's task", tool->name);
        goto failed;
    }

    tool_name.p = tool->name;
    tool_name.len = ngx_strlen(tool->name);

    c = ag_credcache_get(ngx_http_agentgov_credcache, ctx->task.id, tool_name,
                         ngx_time(), ctx->task.expires);

    if (c == NULL) {
        if (ag_cred_mint(amcf->signing_key, amcf->signing_kid,
                         (const char *) amcf->issuer.data, &ctx->task, tool,
                         ngx_time(), &minted, err, sizeof(err))
            != 0)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "agentgov: cannot mint the credential of tool "
                          "\"%s\": %s", tool->name, err);
            goto failed;
        }

        (void) ag_credcache_put(ngx_http_agentgov_credcache, ctx->task.id,
                                tool_name, &minted);

        c = ag_credcache_get(ngx_http_agentgov_credcache, ctx->task.id,
                             tool_name, ngx_time(), ctx->task.expires);

        if (c == NULL) {
            goto failed;
        }
    }

    ctx->cred_jti.data = (u_char *) c->jti;
    ctx->cred_jti.len = ngx_strlen(c->jti);
    ctx->cred_exp = c->exp;

    if (ngx_http_agentgov_format(r, tool->cred_format, "{token}",
                                 (u_char *) c->token, ngx_strlen(c->token),
                                 &value)
        != NGX_OK)
    {
        goto failed;
    }

    /* the jti stays valid for the request: the cache may replace c */
    ctx->cred_jti.data = ngx_pstrdup(r->pool, &ctx->cred_jti);
    if (ctx->cred_jti.data == NULL) {
        goto failed;
    }

    ctx->injected = 1;
    return ngx_http_agentgov_set_header(r, tool->cred_header, &value);

failed:

    return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "gateway_error", "the tool's credential "
                                     "cannot be made: the call does not "
                                     "leave without it");
}


/* format with its placeholder replaced by data */

static ngx_int_t
ngx_http_agentgov_format(ngx_http_request_t *r, const char *format,
    const char *placeholder, u_char *data, size_t len, ngx_str_t *out)
{
    u_char  *p, *at;
    size_t   flen, plen;

    flen = ngx_strlen(format);
    plen = ngx_strlen(placeholder);

    at = ngx_strlcasestrn((u_char *) format, (u_char *) format + flen,
                          (u_char *) placeholder, plen - 1);
    if (at == NULL) {
        return NGX_ERROR;
    }

    out->len = flen - plen + len;
    out->data = ngx_pnalloc(r->pool, out->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(out->data, format, at - (u_char *) format);
    p = ngx_cpymem(p, data, len);
    ngx_memcpy(p, at + plen, flen - (at - (u_char *) format) - plen);

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_set_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    size_t            len;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);

    h = ngx_list_push(&r->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key.len = len;
    h->key.data = (u_char *) name;
    h->value = *value;

    h->lowcase_key = ngx_pnalloc(r->pool, len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    h->hash = ngx_hash_strlow(h->lowcase_key, (u_char *) name, len);

    if (len == sizeof("Authorization") - 1
        && ngx_strncasecmp((u_char *) name, (u_char *) "Authorization", len)
           == 0)
    {
        r->headers_in.authorization = h;
    }

    return NGX_OK;
}


/* --- agentgov_jwks -------------------------------------------------------------- */

char *
ngx_http_agentgov_jwks_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_agentgov_jwks_handler;

    return NGX_CONF_OK;
}


/* The keys tools verify minted credentials with: the signing key, and the
   next one (agentgov_signing_key ... next) before it signs. */

static ngx_int_t
ngx_http_agentgov_jwks_handler(ngx_http_request_t *r)
{
    json_t                         *keys, *out;
    ngx_int_t                       rc;
    ngx_pool_cleanup_t             *cln;
    ngx_http_agentgov_main_conf_t  *amcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    keys = json_array();
    out = json_pack("{s:o}", "keys", keys);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = out;

    if (amcf->signing_key
        && json_array_append_new(keys, ag_jwk_public(amcf->signing_key,
                                                     amcf->signing_kid))
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (amcf->next_key
        && json_array_append_new(keys, ag_jwk_public(amcf->next_key,
                                                     amcf->next_kid))
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_agentgov_send_json(r, NGX_HTTP_OK, out);
}
