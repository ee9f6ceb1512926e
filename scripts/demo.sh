#!/usr/bin/env bash
# The demo gateway of `make run` / `make stop`: Debian's nginx with the module
# on 127.0.0.1:8080, demo tool APIs served by the same nginx on 127.0.0.1:8081
# and :8082, the MCP tool `files` (t/mcp/server.mjs, on the official MCP SDK)
# on 127.0.0.1:8083, dev keys and the example policy, all under build/run/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${AGENTGOV_BUILD:-$root/build}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
run=$build/run
cli=$build/agentgov
port=${AGENTGOV_DEMO_PORT:-8080}
mcp_port=${AGENTGOV_DEMO_MCP_PORT:-8083}

# the pid of the demo's MCP server, if it is still that process
mcp_pid() {
    local pid
    [ -f "$run/mcp.pid" ] || return 1
    pid=$(cat "$run/mcp.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 't/mcp/server.mjs' || return 1
    echo "$pid"
}

stop() {
    local stopped= pid
    if [ -f "$run/nginx.pid" ] && kill -0 "$(cat "$run/nginx.pid")" 2>/dev/null; then
        "$nginx" -p "$run/" -c "$run/nginx.conf" -s quit 2>/dev/null || true
        for _ in $(seq 50); do
            [ -f "$run/nginx.pid" ] || break
            sleep 0.1
        done
        stopped=1
    fi
    if pid=$(mcp_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        stopped=1
    fi
    rm -f "$run/mcp.pid"
    if [ -n "$stopped" ]; then
        echo "agentgov demo stopped"
    else
        echo "agentgov demo is not running"
    fi
}

# the MCP tool `files`: a real MCP server (streamable HTTP, JSON answers) on
# 127.0.0.1:$mcp_port/mcp; its output goes to logs/mcp.log
start_mcp() {
    local pid
    : > "$run/logs/mcp.log"
    AGENTGOV_BUILD=$build nohup node "$root/t/mcp/server.mjs" --port "$mcp_port" --json \
        </dev/null >>"$run/logs/mcp.log" 2>&1 &
    pid=$!
    echo "$pid" > "$run/mcp.pid"
    for _ in $(seq 100); do
        grep -q '^ready ' "$run/logs/mcp.log" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "agentgov demo: the MCP server did not start on 127.0.0.1:$mcp_port:" >&2
    cat "$run/logs/mcp.log" >&2
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$run/mcp.pid"
    exit 1
}

start() {
    mkdir -p "$run/keys" "$run/logs" "$run/tmp" "$run/state" "$run/audit"
    chmod 700 "$run/keys"
    # the workers write the state file (and create the audit log again if it
    # is removed); started as root, nginx runs them as nobody
    if [ "$(id -u)" -eq 0 ]; then
        chown nobody "$run/state" "$run/audit"
    fi

    # dev keys: the gateway's own signing key, and an identity provider for
    # agents and people ("agentgov-dev")
    if [ ! -f "$run/keys/gateway.pem" ] || [ ! -f "$run/keys/gateway.jwks.json" ]; then
        "$cli" keygen --type ed25519 --out "$run/keys/gateway.pem" \
            --jwks "$run/keys/gateway.jwks.json" --force >/dev/null
    fi
    if [ ! -f "$run/keys/idp.pem" ]; then
        "$cli" keygen --type p256 --out "$run/keys/idp.pem" --jwks "$run/keys/idp.jwks.json" >/dev/null
    fi

    # the demo tools speak HTTPS under a dev CA: the gateway verifies them
    # before it sends a credential
    if [ ! -f "$run/keys/tools.pem" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=agentgov demo CA" -keyout "$run/keys/demo-ca.key" \
            -out "$run/keys/demo-ca.pem" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=localhost" -keyout "$run/keys/tools.key" \
            -out "$run/keys/tools.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$run/keys/tools.ext"
        openssl x509 -req -in "$run/keys/tools.csr" -CA "$run/keys/demo-ca.pem" \
            -CAkey "$run/keys/demo-ca.key" -CAcreateserial -days 3650 \
            -extfile "$run/keys/tools.ext" -out "$run/keys/tools.pem" 2>/dev/null
    fi

    # the payments tool's key: only the gateway holds it (dev only)
    if [ ! -f "$run/keys/payments.secret" ]; then
        (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$run/keys/payments.secret")
    fi

    # the audit log's HMAC key (dev only)
    if [ ! -f "$run/keys/audit.key" ]; then
        head -c 32 /dev/urandom > "$run/keys/audit.key"
        chmod 600 "$run/keys/audit.key"
    fi

    cp "$root/policies/example.json" "$run/policy.json"
    "$cli" policy check "$run/policy.json" >/dev/null

    cat > "$run/nginx.conf" <<CONF
load_module $build/ngx_http_agentgov_module.so;
worker_processes 2;
pid $run/nginx.pid;
error_log $run/logs/error.log info;
events { worker_connections 1024; }
http {
    access_log $run/logs/access.log;
    client_body_temp_path $run/tmp/body;
    proxy_temp_path $run/tmp/proxy;
    fastcgi_temp_path $run/tmp/fastcgi;
    uwsgi_temp_path $run/tmp/uwsgi;
    scgi_temp_path $run/tmp/scgi;

    agentgov_policy      policy.json;
    agentgov_trust       agentgov-dev keys/idp.jwks.json;
    agentgov_zone        agentgov 32m;
    agentgov_signing_key keys/gateway.pem;
    agentgov_state       state/agentgov.state;
    agentgov_audit_log   audit/audit.jsonl key=keys/audit.key fail=closed;
    agentgov_secret      payments_key keys/payments.secret;
    agentgov_hold_timeout 2m;

    # what the demo tools tell about the credential they got (never the value)
    map \$http_authorization \$demo_credential {
        "~^Bearer ey"  "a JWT the gateway minted for this task and tool";
        "~^Bearer "    "the gateway's payments key";
        default        "none";
    }

    log_format agentgov '\$remote_addr [\$time_local] "\$request_method \$uri" \$status '
                        'agent=\$agentgov_agent task=\$agentgov_task intent=\$agentgov_intent tool=\$agentgov_tool '
                        'decision=\$agentgov_decision rule=\$agentgov_rule id=\$agentgov_request_id';

    # the gateway
    server {
        listen 127.0.0.1:$port;
        access_log $run/logs/gateway.log agentgov;

        location /agentgov/ { agentgov_api; }
        location = /.well-known/jwks.json { agentgov_jwks; }

        # credentials go only to a tool whose certificate verifies
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate keys/demo-ca.pem;
        proxy_ssl_name localhost;

        location /tools/tickets/ {
            agentgov on;
            agentgov_tool tickets;
            proxy_pass https://127.0.0.1:8081/;
        }
        location /tools/payments/ {
            agentgov on;
            agentgov_tool payments;
            proxy_pass https://127.0.0.1:8082/;
        }

        # an MCP tool: each JSON-RPC message is decided (docs/mcp.md)
        location /mcp/files {
            agentgov on;
            agentgov_tool files;
            proxy_pass http://127.0.0.1:$mcp_port/mcp;
            proxy_http_version 1.1;
            proxy_buffering off;
        }
    }

    # demo tool APIs (HTTPS)
    server {
        listen 127.0.0.1:8081 ssl;
        ssl_certificate keys/tools.pem;
        ssl_certificate_key keys/tools.key;
        default_type application/json;
        location / { return 200 '{"tool": "tickets", "method": "\$request_method", "path": "\$uri", "credential": "\$demo_credential"}\n'; }
    }
    server {
        listen 127.0.0.1:8082 ssl;
        ssl_certificate keys/tools.pem;
        ssl_certificate_key keys/tools.key;
        default_type application/json;
        location / { return 200 '{"tool": "payments", "method": "\$request_method", "path": "\$uri", "credential": "\$demo_credential"}\n'; }
    }
}
CONF

    stop >/dev/null
    start_mcp
    "$nginx" -p "$run/" -c "$run/nginx.conf"

    agent=$("$cli" token --key "$run/keys/idp.pem" --iss agentgov-dev --sub support-bot --ttl 12h)
    approver=$("$cli" token --key "$run/keys/idp.pem" --iss agentgov-dev --sub alice \
                 --groups finance --ttl 12h)
    echo "$agent" > "$run/agent.token"
    echo "$approver" > "$run/approver.token"

    # every tool call belongs to a task: declare one for the demo
    declared=$(curl -s -H "Agent-Authorization: Bearer $agent" -H 'Content-Type: application/json' \
        -d '{"intent": "triage-ticket", "ttl": "15m", "purpose": "demo"}' \
        "http://127.0.0.1:$port/agentgov/v1/tasks")
    task=$(printf '%s' "$declared" | perl -MJSON::PP -0777 -ne 'print decode_json($_)->{token}') || {
        echo "agentgov demo: declaring the demo task failed: $declared" >&2
        exit 1
    }
    echo "$task" > "$run/task.token"

    # the MCP client finds the SDK under build/ unless told otherwise
    client=
    if [ "$build" != "$root/build" ]; then
        client="AGENTGOV_BUILD=$build "
    fi

    cat <<TXT
agentgov demo running on http://127.0.0.1:$port (logs in $run/logs)

agent token (support-bot, also in $run/agent.token):
$agent

approver token (alice, group finance, also in $run/approver.token):
$approver

  AGENT=\$(cat $run/agent.token)

every call belongs to a task the agent declared (15 minutes at most for this intent):
  curl -s -H "Agent-Authorization: Bearer \$AGENT" -H 'Content-Type: application/json' \\
       -d '{"intent": "triage-ticket", "ttl": "15m"}' http://127.0.0.1:$port/agentgov/v1/tasks

the demo declared one; its token is in $run/task.token:
  TASK=\$(cat $run/task.token)

allowed (reads a ticket):
  curl -i -H "Agent-Authorization: Bearer \$AGENT" -H "Agent-Task: \$TASK" http://127.0.0.1:$port/tools/tickets/v1/tickets/42

denied (bulk export is never part of a task):
  curl -i -H "Agent-Authorization: Bearer \$AGENT" -H "Agent-Task: \$TASK" http://127.0.0.1:$port/tools/tickets/v1/export/all

held (a refund over 5000 waits, live, up to 2 minutes for finance to decide):
  curl -i -H "Agent-Authorization: Bearer \$AGENT" -H "Agent-Task: \$TASK" -H 'Content-Type: application/json' \\
       -d '{"amount": 9000, "currency": "EUR"}' http://127.0.0.1:$port/tools/payments/v1/refunds

and, from another shell, the approver lists it and approves (or "deny"):
  APPROVER=\$(cat $run/approver.token)
  curl -s -H "Authorization: Bearer \$APPROVER" 'http://127.0.0.1:$port/agentgov/v1/approvals?state=pending'
  curl -s -H "Authorization: Bearer \$APPROVER" -H 'Content-Type: application/json' \\
       -d '{"decision": "approve", "reason": "checked"}' http://127.0.0.1:$port/agentgov/v1/approvals/<id>

refused (a key in the call: agents never send keys, the gateway adds the tool's credential):
  curl -i -H "Agent-Authorization: Bearer \$AGENT" -H "Agent-Task: \$TASK" -H 'X-Note: AKIAIOSFODNN7EXAMPLE' http://127.0.0.1:$port/tools/tickets/v1/tickets/42

the tickets and payments tools are HTTPS (verified with a dev CA); every tool, the MCP one too,
gets a credential the agent never sees;
the gateway's public keys, to verify the JWTs it mints: http://127.0.0.1:$port/.well-known/jwks.json

MCP: the tool \`files\` is an MCP server behind http://127.0.0.1:$port/mcp/files; each JSON-RPC
message is decided (docs/mcp.md). The MCP SDK's client, from the top of the tree: tools/list, an
allowed read, a refused one (a tool error result the model reads), a delete held for finance:
  ${client}node t/mcp/client.mjs --url http://127.0.0.1:$port/mcp/files \\
       --header "Agent-Authorization: Bearer \$AGENT" --header "Agent-Task: \$TASK" \\
       list 'call:read_file:{"path":"/srv/tickets/7.txt"}' 'call:read_file:{"path":"/etc/passwd"}' \\
       'call:delete_file:{"path":"/srv/tickets/7.txt"}'

the delete answers "approval_pending" with the approval's id in result._meta.agentgov.approval;
the approver approves it (within 2 minutes), and the identical call then passes, once:
  APPROVER=\$(cat $run/approver.token)
  curl -s -H "Authorization: Bearer \$APPROVER" -H 'Content-Type: application/json' \\
       -d '{"decision": "approve", "reason": "checked"}' http://127.0.0.1:$port/agentgov/v1/approvals/<id>
  ${client}node t/mcp/client.mjs --url http://127.0.0.1:$port/mcp/files \\
       --header "Agent-Authorization: Bearer \$AGENT" --header "Agent-Task: \$TASK" \\
       'call:delete_file:{"path":"/srv/tickets/7.txt"}'

every decision is in the audit log; verify the chain and read it:
  $cli audit verify $run/audit/audit.jsonl --key $run/keys/audit.key --jwks $run/keys/gateway.jwks.json
  $cli audit show $run/audit/audit.jsonl

stop it with: make stop
TXT
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
