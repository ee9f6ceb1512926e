#!/usr/bin/env node
// A real MCP client on the official TypeScript SDK, for the integration tests:
//
//   node t/mcp/client.mjs --url http://127.0.0.1:PORT/mcp \
//       [--header 'Name: value']... [--timeout MS] OP...
//
// OP: list | call:NAME:JSONARGS | read:URI | prompt:NAME | ping
//     (call:NAME:@FILE reads JSONARGS from FILE: big arguments exceed what a
//     command line argument may hold, 128 KiB on Linux)
//
// Connects (initialize), runs the ops in order and prints one JSON line per op:
//   {"op":"list","ok":true,"tools":["read_file",...],"result":<ListToolsResult>}
//   {"op":"call","ok":true,"result":<CallToolResult>}     (isError results too)
//   {"op":"read"|"prompt"|"ping","ok":true,"result":...}
//   {"op":...,"ok":false,"error":"<message>","code":<code if any>}
// then goes on with the next op. Exit 0; exit 2 when connecting fails, after
// printing {"op":"connect","ok":false,...}.
import { readFileSync } from 'node:fs';
import { sdk } from './sdk.mjs';

const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

function usage(msg) {
    process.stderr.write(`client.mjs: ${msg}\n` +
        "usage: client.mjs --url URL [--header 'Name: value']... [--timeout MS] OP...\n");
    process.exit(64);
}

let url = null;
let timeout = 10000;
const headers = {};
const ops = [];
{
    const a = process.argv.slice(2);
    for (let i = 0; i < a.length; i++) {
        if (a[i] === '--url') {
            url = a[++i];
        } else if (a[i] === '--header') {
            const h = a[++i] ?? '';
            const c = h.indexOf(':');
            if (c <= 0) {
                usage(`bad header ${h}`);
            }
            headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
        } else if (a[i] === '--timeout') {
            timeout = Number(a[++i]);
        } else {
            ops.push(a[i]);
        }
    }
    if (!url) {
        usage('--url is required');
    }
}

function out(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

// exit once stdout is flushed: a write to a full pipe completes later, and
// process.exit() would cut a big result short
function exit(code) {
    process.stdout.write('', () => process.exit(code));
}

function failure(op, e) {
    let msg = String(e && e.message || e);
    if (e && e.cause) { // fetch failed: ECONNREFUSED and the like
        msg += `: ${e.cause.code || e.cause.message || e.cause}`;
    }
    const o = { op, ok: false, error: msg };
    if (e && e.code !== undefined) {
        o.code = e.code;
    }
    if (e && e.data !== undefined) {
        o.data = e.data;
    }
    return o;
}

// "op:rest" split at the first colon only (URIs and JSON have colons of their own)
function splitOp(s) {
    const i = s.indexOf(':');
    return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

const client = new Client({ name: 'agentgov-test-client', version: '1.0.0' });
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const reqOpts = { timeout };

async function run(op, rest) {
    switch (op) {
    case 'list': {
        const r = await client.listTools(undefined, reqOpts);
        return { op, ok: true, tools: r.tools.map((t) => t.name), result: r };
    }
    case 'call': {
        const [name, json] = splitOp(rest);
        const args = json === '' ? {}
            : JSON.parse(json.startsWith('@') ? readFileSync(json.slice(1), 'utf8') : json);
        return { op, ok: true, result: await client.callTool({ name, arguments: args }, undefined, reqOpts) };
    }
    case 'read':
        return { op, ok: true, result: await client.readResource({ uri: rest }, reqOpts) };
    case 'prompt':
        return { op, ok: true, result: await client.getPrompt({ name: rest }, reqOpts) };
    case 'ping':
        return { op, ok: true, result: await client.ping(reqOpts) };
    default:
        return { op, ok: false, error: `unknown op ${op}` };
    }
}

let connected = false;
try {
    await client.connect(transport, reqOpts);
    connected = true;
} catch (e) {
    out(failure('connect', e));
}

if (connected) {
    for (const spec of ops) {
        const [op, rest] = splitOp(spec);
        try {
            out(await run(op, rest));
        } catch (e) {
            out(failure(op, e));
        }
    }
    await client.close().catch(() => {});
}
exit(connected ? 0 : 2);
