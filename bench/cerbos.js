// `make bench` (docs/bench.md): the njs glue of the design an nginx user
// would build without agentgov, nginx asking an external policy decision
// point (Cerbos) about every call. bench/run.pl loads it into its Cerbos
// front with js_import.
//
// Cerbos answers its CheckResources API with HTTP 200 and the effect in a JSON
// body; nginx alone cannot act on a body, so this script reads the effect:
//
//   check  the target of `auth_request /_authz;` (calls without a body): the
//          call's method, path, query and X-Team header to Cerbos, 204 on
//          EFFECT_ALLOW, 403 on EFFECT_DENY;
//   gate   js_content of a location whose calls have a JSON body (an
//          auth_request subrequest runs before nginx reads the body, so it
//          cannot see it): reads and parses the body, asks Cerbos with the
//          body (or, for MCP, the tools/call name and arguments) as
//          attributes, and on EFFECT_ALLOW redirects internally to
//          @<tool>, which proxies the call and its body to the upstream.
//
// The agent's JWT (Agent-Authorization: Bearer) goes to Cerbos as auxData,
// Cerbos verifies it against the bench's JWKS and the policy's conditions
// read its claims. No token: 401; a token Cerbos refuses (HTTP 400): 401; any
// other failure: 502. Variables the locations set: $authz_tool (the Cerbos
// resource kind), $authz_method, $authz_uri, $authz_args (for check, which
// runs in a subrequest), $authz_mcp (gate: the body is JSON-RPC).

import qs from 'querystring';

function bearer(r) {
    var h = r.headersIn['Agent-Authorization'] || '';
    return h.substring(0, 7) == 'Bearer ' ? h.substring(7) : '';
}

// the token's subject names the principal; Cerbos verifies the token itself
function subject(token) {
    try {
        var p = token.split('.')[1];
        return JSON.parse(Buffer.from(p, 'base64url').toString()).sub || 'unknown';
    } catch (e) {
        return 'unknown';
    }
}

// POSTs a CheckResources request for CALL to Cerbos (location /_cerbos);
// DONE gets 200 (EFFECT_ALLOW), 403, 401 or 502.
function ask(r, token, call, done) {
    var req = {
        requestId: 'bench',
        principal: { id: subject(token), roles: ['agent'] },
        auxData: { jwt: { token: token, keySetId: 'agents' } },
        resources: [{ actions: [call.action],
                      resource: { kind: r.variables.authz_tool, id: 'call', attr: call.attr } }]
    };
    r.subrequest('/_cerbos', { method: 'POST', body: JSON.stringify(req) }, function (reply) {
        if (reply.status == 400) { done(401); return; }
        if (reply.status != 200) { done(502); return; }
        var effect;
        try {
            effect = JSON.parse(reply.responseText).results[0].actions[call.action];
        } catch (e) {
            done(502);
            return;
        }
        done(effect == 'EFFECT_ALLOW' ? 200 : effect == 'EFFECT_DENY' ? 403 : 502);
    });
}

// the path as the upstream sees it: /tools/<name> is the location's prefix
function toolPath(uri) {
    return uri.replace(/^\/tools\/[^\/]+/, '') || '/';
}

function check(r) {
    var v = r.variables;
    var token = bearer(r);
    if (!token) { r.return(401); return; }
    ask(r, token, {
        action: v.authz_method,
        attr: { method: v.authz_method, path: toolPath(v.authz_uri),
                query: qs.parse(v.authz_args || ''),
                headers: { 'x-team': r.headersIn['X-Team'] || '' } }
    }, function (status) { r.return(status == 200 ? 204 : status); });
}

function gate(r) {
    var token = bearer(r);
    if (!token) { r.return(401); return; }
    var body;
    try { body = JSON.parse(r.requestText); } catch (e) { r.return(400); return; }
    var attr = { method: r.method, path: toolPath(r.uri), query: r.args,
                 headers: { 'x-team': r.headersIn['X-Team'] || '' } };
    var action = r.method;
    if (r.variables.authz_mcp) {
        if (!body || typeof body.method != 'string') { r.return(400); return; }
        action = body.method;
        var params = body.params || {};
        attr.tool = params.name || '';
        attr.args = params.arguments || {};
    } else {
        attr.body = body;
    }
    ask(r, token, { action: action, attr: attr }, function (status) {
        if (status == 200) {
            r.internalRedirect('@' + r.variables.authz_tool);
        } else {
            r.return(status);
        }
    });
}

export default { check, gate };
