// Locates the MCP TypeScript SDK that `make deps-node` installs under
// $(BUILD)/node, and imports modules from it. The SDK lives outside this
// directory, so bare imports ('@modelcontextprotocol/sdk/...') cannot resolve;
// the modules are imported by path instead.
//
// Where: $AGENTGOV_NODE_MODULES, else $AGENTGOV_BUILD/node/node_modules (set by
// make test), else build/node/node_modules at the top of the tree.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export const nodeModules =
    process.env.AGENTGOV_NODE_MODULES ||
    join(process.env.AGENTGOV_BUILD || resolve(here, '..', '..', 'build'), 'node', 'node_modules');

// sub: a module of the SDK's ESM build, e.g. 'server/index.js', 'types.js'
export async function sdk(sub) {
    const file = join(nodeModules, '@modelcontextprotocol', 'sdk', 'dist', 'esm', sub);
    if (!existsSync(file)) {
        process.stderr.write(`t/mcp: ${file} is missing; run make deps-node\n`);
        process.exit(3);
    }
    return import(pathToFileURL(file).href);
}
