#!/usr/bin/env node
// A real MCP server on the official TypeScript SDK, for the integration tests
// and the demo: streamable HTTP on 127.0.0.1:PORT/mcp, stateful sessions.
//
//   node t/mcp/server.mjs --port N [--json] [--desc-file FILE] [--log FILE]
//
//   --port N          port on 127.0.0.1 (0: any free port); prints "ready <port>"
//   --json            answer POSTs with application/json instead of an SSE stream
//   --desc-file FILE  the description of tool read_file, read again on every
//                     tools/list (so a test can change it between two lists)
//   --log FILE        append one JSON line per HTTP request received (see README)
//
// Tools: read_file {path}, list_dir {path}, delete_file {path}, echo {text},
// secret_tool {}. Resource file:///srv/readme. Prompt summarize.
// See t/mcp/README.md.
import { createServer } from 'node:http';
import { randomUUID, webcrypto } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { sdk } from './sdk.mjs';

// Node 18 has no global crypto, which the SDK's transport uses
if (!globalThis.crypto) {
    globalThis.crypto = webcrypto;
}

const { Server } = await sdk('server/index.js');
const { StreamableHTTPServerTransport } = await sdk('server/streamableHttp.js');
const T = await sdk('types.js');

// --- arguments ---------------------------------------------------------------------

const opt = { port: null, json: false, descFile: null, log: null };
{
    const a = process.argv.slice(2);
    for (let i = 0; i < a.length; i++) {
        switch (a[i]) {
        case '--port': opt.port = Number(a[++i]); break;
        case '--json': opt.json = true; break;
        case '--desc-file': opt.descFile = a[++i]; break;
        case '--log': opt.log = a[++i]; break;
        default:
            process.stderr.write(`server.mjs: unknown argument ${a[i]}\n`);
            process.exit(2);
        }
    }
    if (!Number.isInteger(opt.port) || opt.port < 0 || opt.port > 65535) {
        process.stderr.write('usage: server.mjs --port N [--json] [--desc-file FILE] [--log FILE]\n');
        process.exit(2);
    }
}

// Big enough for an echo of 4 MiB of text in its JSON-RPC envelope, escapes and all.
const MAX_BODY = 16 * 1024 * 1024;

// --- the MCP side: one low-level Server per session ------------------------------------

function readFileDescription() {
    if (!opt.descFile) {
        return 'Read a file and return its contents';
    }
    try {
        return readFileSync(opt.descFile, 'utf8').replace(/\n$/, '');
    } catch (e) {
        return `(cannot read ${opt.descFile}: ${e.code || e.message})`;
    }
}

const pathSchema = {
    type: 'object',
    properties: { path: { type: 'string', description: 'a path' } },
    required: ['path'],
};

function tools() {
    return [
        { name: 'read_file', description: readFileDescription(), inputSchema: pathSchema },
        { name: 'list_dir', description: 'List a directory', inputSchema: pathSchema },
        { name: 'delete_file', description: 'Delete a file', inputSchema: pathSchema },
        {
            name: 'echo',
            description: 'Return the text given',
            inputSchema: {
                type: 'object',
                properties: { text: { type: 'string' } },
                required: ['text'],
            },
        },
        {
            name: 'secret_tool',
            description: 'A tool that no policy should allow',
            inputSchema: { type: 'object', properties: {} },
        },
    ];
}

// thrown from a handler: the SDK answers with a JSON-RPC error of this code and
// message (an McpError would prefix its message with "MCP error N: " twice)
const rpcError = (code, message) => Object.assign(new Error(message), { code });

const text = (s) => ({ content: [{ type: 'text', text: s }] });
const toolError = (s) => ({ content: [{ type: 'text', text: s }], isError: true });

function callTool(name, args) {
    args = args || {};
    const needs = (k) => typeof args[k] === 'string';
    switch (name) {
    case 'read_file':
        return needs('path') ? text(`contents of ${args.path}`) : toolError('path: a string is required');
    case 'list_dir':
        return needs('path') ? text('a b c') : toolError('path: a string is required');
    case 'delete_file':
        return needs('path') ? text(`deleted ${args.path}`) : toolError('path: a string is required');
    case 'echo':
        return needs('text') ? text(args.text) : toolError('text: a string is required');
    case 'secret_tool':
        return text('the secret is 42');
    default:
        throw rpcError(T.ErrorCode.InvalidParams, `Unknown tool: ${name}`);
    }
}

const README_URI = 'file:///srv/readme';

function makeServer() {
    const server = new Server(
        { name: 'agentgov-test-server', version: '1.0.0' },
        { capabilities: { tools: { listChanged: false }, resources: {}, prompts: {} } },
    );
    server.setRequestHandler(T.ListToolsRequestSchema, async () => ({ tools: tools() }));
    server.setRequestHandler(T.CallToolRequestSchema, async (req) =>
        callTool(req.params.name, req.params.arguments));
    server.setRequestHandler(T.ListResourcesRequestSchema, async () => ({
        resources: [{ uri: README_URI, name: 'readme', mimeType: 'text/plain' }],
    }));
    server.setRequestHandler(T.ReadResourceRequestSchema, async (req) => {
        if (req.params.uri !== README_URI) {
            throw rpcError(-32002, `Resource not found: ${req.params.uri}`);
        }
        return { contents: [{ uri: README_URI, mimeType: 'text/plain', text: 'readme contents' }] };
    });
    server.setRequestHandler(T.ListPromptsRequestSchema, async () => ({
        prompts: [{
            name: 'summarize',
            description: 'Summarize a text',
            arguments: [{ name: 'text', description: 'the text', required: false }],
        }],
    }));
    server.setRequestHandler(T.GetPromptRequestSchema, async (req) => {
        if (req.params.name !== 'summarize') {
            throw rpcError(T.ErrorCode.InvalidParams, `Unknown prompt: ${req.params.name}`);
        }
        const t = req.params.arguments?.text ?? 'the readme';
        return {
            description: 'Summarize a text',
            messages: [{ role: 'user', content: { type: 'text', text: `Summarize: ${t}` } }],
        };
    });
    return server;
}

// --- the HTTP side ---------------------------------------------------------------------

const sessions = new Map(); // session id -> transport

function log(req, body, parsed) {
    if (!opt.log) {
        return;
    }
    const msgs = parsed === undefined ? [] : Array.isArray(parsed) ? parsed : [parsed];
    const rpc = [];
    const tools = [];
    for (const m of msgs) {
        if (m && typeof m === 'object') {
            if (typeof m.method === 'string') {
                rpc.push(m.method);
                if (m.method === 'tools/call' && typeof m.params?.name === 'string') {
                    tools.push(m.params.name);
                }
            } else if ('result' in m || 'error' in m) {
                rpc.push('(response)');
            }
        }
    }
    const line = {
        method: req.method,
        path: req.url,
        authorization: req.headers.authorization ?? null,
        session: req.headers['mcp-session-id'] ?? null,
        rpc,
        tools,
        bytes: body === undefined ? 0 : body.length,
        headers: req.headers,
    };
    appendFileSync(opt.log, JSON.stringify(line) + '\n');
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let n = 0;
        req.on('data', (c) => {
            n += c.length;
            if (n <= MAX_BODY) {
                chunks.push(c);
            }
        });
        req.on('end', () => resolve(n > MAX_BODY ? null : Buffer.concat(chunks)));
        req.on('error', reject);
    });
}

function jsonError(res, status, code, message) {
    if (res.headersSent) {
        res.end();
        return;
    }
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

async function handle(req, res) {
    let body;
    let parsed;
    let badJson = false;
    if (req.method === 'POST') {
        body = await readBody(req);
        if (body === null) {
            log(req, undefined, undefined);
            return jsonError(res, 413, -32000, 'Payload Too Large');
        }
        try {
            parsed = JSON.parse(body.toString('utf8'));
        } catch {
            badJson = true;
        }
    }
    log(req, body, parsed);

    if (new URL(req.url, 'http://localhost').pathname !== '/mcp') {
        return jsonError(res, 404, -32000, 'Not Found');
    }
    if (badJson) {
        return jsonError(res, 400, -32700, 'Parse error: Invalid JSON');
    }

    const sid = req.headers['mcp-session-id'];
    if (sid !== undefined) {
        const transport = sessions.get(sid);
        if (!transport) {
            return jsonError(res, 404, -32001, 'Session not found');
        }
        return transport.handleRequest(req, res, parsed);
    }

    // no session: only an initialize request may start one
    if (req.method !== 'POST' || !T.isInitializeRequest(parsed)) {
        return jsonError(res, 400, -32000, 'Bad Request: No valid session ID provided');
    }
    const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: opt.json,
        maxRequestBodySize: MAX_BODY,
        onsessioninitialized: (id) => { sessions.set(id, transport); },
    });
    transport.onclose = () => {
        if (transport.sessionId) {
            sessions.delete(transport.sessionId);
        }
    };
    await makeServer().connect(transport);
    return transport.handleRequest(req, res, parsed);
}

const http = createServer((req, res) => {
    handle(req, res).catch((e) => {
        process.stderr.write(`server.mjs: ${e && e.stack || e}\n`);
        jsonError(res, 500, -32603, 'Internal error');
    });
});

http.listen(opt.port, '127.0.0.1', () => {
    process.stdout.write(`ready ${http.address().port}\n`);
});

let stopping = false;
async function stop() {
    if (stopping) {
        return;
    }
    stopping = true;
    for (const t of sessions.values()) {
        await t.close().catch(() => {});
    }
    http.close(() => process.exit(0));
    http.closeAllConnections?.();
    setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
