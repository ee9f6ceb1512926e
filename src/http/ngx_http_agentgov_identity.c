/*
 * Who is calling (SPEC section 3): an agent JWT in Agent-Authorization, or a
 * client certificate carrying one SPIFFE ID, mapped to an agent of the policy.
 */

#include <openssl/ssl.h>

#include "ngx_http_agentgov.h"
#include "ag_tokcache.h"


/*
 * Verified agent tokens, per worker: an asymmetric signature check per call
 * would dominate the gateway's cost, and a token's signature, issuer and
 * audience cannot change while the worker lives (a new policy or trust means
 * new workers). Time bounds are checked again on every hit.
 */
#define NGX_HTTP_AGENTGOV_TOKCACHE_SLOTS  1024

static ag_tokcache_t  *ngx_http_agentgov_tokcache;


static ngx_int_t ngx_http_agentgov_identify_jwt(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_table_elt_t *h,
    ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_identify_cert(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, X509 *cert,
    ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_refusal_text(ngx_http_request_t *r,
    ngx_http_agentgov_refusal_t *ref, ngx_uint_t status, const char *code,
    const char *prefix, const char *detail);


/*
 * Who is calling. On a governed tool location (api = 0) the caller is an
 * agent: Agent-Authorization or a client certificate, mapped to an agent of
 * the policy. On the control API (api = 1) people may call too, with
 * Authorization: Bearer or a certificate; an identity that maps to an agent
 * is always that agent (SPEC section 3). One identity per request.
 *
 * NGX_OK: ctx->agent is set, or (api only) ctx->person. NGX_DECLINED: ref
 * says why not. NGX_ERROR: internal failure.
 */

ngx_int_t
ngx_http_agentgov_identify(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_uint_t api, ngx_http_agentgov_refusal_t *ref)
{
    X509                           *cert;
    ngx_int_t                       rc;
    ngx_uint_t                      n, m;
    ag_identity_t                   id;
    ngx_table_elt_t                *h, *p;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    h = ngx_http_agentgov_find_header(r, "Agent-Authorization",
                                      sizeof("Agent-Authorization") - 1, &n);
    p = NULL;
    m = 0;

    if (api) {
        p = ngx_http_agentgov_find_header(r, "Authorization",
                                          sizeof("Authorization") - 1, &m);
    }

    if (n > 1 || m > 1) {
        return ngx_http_agentgov_refusal_text(r, ref, NGX_HTTP_BAD_REQUEST,
                                              "bad_request", "more than one "
                                              "authorization header", NULL);
    }

    cert = NULL;

#if (NGX_HTTP_SSL)
    /*
     * With SPIFFE trust configured, a client certificate is an identity
     * claim. Its chain is checked here against its own trust domain's bundle,
     * whatever ssl_client_certificate let through.
     */
    if (amcf->spiffe && r->connection->ssl) {
        cert = SSL_get0_peer_certificate(r->connection->ssl->connection);
    }
#endif

    if ((h != NULL) + (p != NULL) + (cert != NULL) > 1) {
        return ngx_http_agentgov_refusal_text(r, ref, NGX_HTTP_BAD_REQUEST,
                                              "bad_request", "more than one "
                                              "identity (Agent-Authorization, "
                                              "Authorization, client "
                                              "certificate): send one", NULL);
    }

    if (h || p) {
        rc = ngx_http_agentgov_identify_jwt(r, ctx, h ? h : p, ref);

    } else if (cert) {
        rc = ngx_http_agentgov_identify_cert(r, ctx, cert, ref);

    } else {
        return ngx_http_agentgov_refusal_text(r, ref,
                                              NGX_HTTP_UNAUTHORIZED,
                                              "no_identity", api
                                              ? "no identity: send "
                                                "Authorization: Bearer <jwt>, "
                                                "Agent-Authorization or a "
                                                "client certificate"
                                              : "no agent identity: send "
                                                "Agent-Authorization: Bearer "
                                                "<jwt> or a client certificate",
                                              NULL);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_agentgov_identity(ctx, &id);

    ctx->agent = ag_policy_agent(amcf->policy, &id);

    if (ctx->agent == NULL && api && h == NULL) {
        ctx->person = 1;
        return NGX_OK;
    }

    if (ctx->agent == NULL) {
        return ngx_http_agentgov_refusal_text(r, ref, NGX_HTTP_UNAUTHORIZED,
                                              "invalid_identity", "the "
                                              "identity is not an agent of "
                                              "the policy", NULL);
    }

    return NGX_OK;
}


void
ngx_http_agentgov_identity(ngx_http_agentgov_ctx_t *ctx, ag_identity_t *id)
{
    id->spiffe.p = (const char *) ctx->spiffe_id;
    id->spiffe.len = ctx->spiffe_id ? ngx_strlen(ctx->spiffe_id) : 0;
    id->claims = ctx->claims;
}


static ngx_int_t
ngx_http_agentgov_identify_jwt(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_table_elt_t *h,
    ngx_http_agentgov_refusal_t *ref)
{
    char                            err[256];
    json_t                         *cached;
    u_char                         *tok, *last;
    int64_t                         now, nb, na;
    ngx_pool_cleanup_t             *cln;
    ag_jwt_status_t                 st;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    tok = h->value.data;
    last = tok + h->value.len;

    if (h->value.len < 7 || ngx_strncasecmp(tok, (u_char *) "Bearer ", 7) != 0)
    {
        return ngx_http_agentgov_refusal_text(r, ref, NGX_HTTP_UNAUTHORIZED,
                                              "invalid_identity",
                                              "authorization must be "
                                              "\"Bearer <jwt>\"", NULL);
    }

    for (tok += 7; tok < last && *tok == ' '; tok++) { /* void */ }

    if (amcf->trust == NULL) {
        return ngx_http_agentgov_refusal_text(r, ref, NGX_HTTP_UNAUTHORIZED,
                                              "invalid_identity", "no issuer "
                                              "is trusted (agentgov_trust)",
                                              NULL);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    now = ngx_time();
    cached = NULL;

    if (ngx_http_agentgov_tokcache) {
        cached = ag_tokcache_get(ngx_http_agentgov_tokcache,
                                 (const char *) tok, last - tok, now);
    }

    if (cached) {
        ctx->claims = json_incref(cached);

    } else {
        st = ag_jwt_verify(amcf->trust, (const char *) tok, last - tok,
                           (const char *) amcf->audience.data, now,
                           &ctx->claims, err, sizeof(err));

        if (st != AG_JWT_OK) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "agentgov: agent JWT refused: %s", err);

            return ngx_http_agentgov_refusal_text(r, ref,
                                                  NGX_HTTP_UNAUTHORIZED,
                                                  "invalid_identity",
                                                  "invalid agent identity: ",
                                                  err);
        }

        if (ngx_http_agentgov_tokcache) {
            ag_tokcache_window(ctx->claims, AG_JWT_SKEW, &nb, &na);
            ag_tokcache_put(ngx_http_agentgov_tokcache, (const char *) tok,
                            last - tok, ctx->claims, nb, na);
        }
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = ctx->claims;

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_identify_cert(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, X509 *cert, ngx_http_agentgov_refusal_t *ref)
{
#if (NGX_HTTP_SSL)
    char                            err[256];
    u_char                          md[EVP_MAX_MD_SIZE];
    unsigned int                    mdlen;
    STACK_OF(X509)                 *chain;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    ctx->spiffe_id = ngx_pnalloc(r->pool, AG_SPIFFE_ID_MAX + 1);
    if (ctx->spiffe_id == NULL) {
        return NGX_ERROR;
    }

    chain = SSL_get_peer_cert_chain(r->connection->ssl->connection);

    if (ag_spiffe_verify(amcf->spiffe, cert, chain, ngx_time(),
                         (char *) ctx->spiffe_id, AG_SPIFFE_ID_MAX + 1, err,
                         sizeof(err))
        != 0)
    {
        ctx->spiffe_id = NULL;

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "agentgov: client certificate refused: %s", err);

        return ngx_http_agentgov_refusal_text(r, ref, NGX_HTTP_UNAUTHORIZED,
                                              "invalid_identity",
                                              "invalid client certificate: ",
                                              err);
    }

    /* RFC 8705: task tokens are bound to this certificate */
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
        return NGX_ERROR;
    }

    ngx_hex_dump(ctx->cnf, md, 32);

    return NGX_OK;
#else
    return NGX_ERROR;
#endif
}


static ngx_int_t
ngx_http_agentgov_refusal_text(ngx_http_request_t *r,
    ngx_http_agentgov_refusal_t *ref, ngx_uint_t status, const char *code,
    const char *prefix, const char *detail)
{
    size_t  plen, dlen;

    ref->status = status;
    ref->code = code;
    ref->decision = "deny";
    ref->retry_after = 0;

    plen = ngx_strlen(prefix);
    dlen = detail ? ngx_strlen(detail) : 0;

    ref->message.data = ngx_pnalloc(r->pool, plen + dlen);
    if (ref->message.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ref->message.data, prefix, plen);
    if (dlen) {
        ngx_memcpy(ref->message.data + plen, detail, dlen);
    }
    ref->message.len = plen + dlen;

    return NGX_DECLINED;
}



ngx_int_t
ngx_http_agentgov_identity_init_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_tokcache =
                         ag_tokcache_new(NGX_HTTP_AGENTGOV_TOKCACHE_SLOTS);

    if (ngx_http_agentgov_tokcache == NULL) {
        /* verification still works, only slower */
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "agentgov: no memory for the token cache");
    }

    return NGX_OK;
}


void
ngx_http_agentgov_identity_exit_process(ngx_cycle_t *cycle)
{
    ag_tokcache_free(ngx_http_agentgov_tokcache);
    ngx_http_agentgov_tokcache = NULL;
}
