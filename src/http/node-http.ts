import { createRequire } from 'node:module';

// Imported as ESM, node:http goes through a facade that reads every export, and on Node 22 one of
// them (http.WebSocket) loads undici, whose parser is WebAssembly, which the unit's --jitless lacks:
// an unhandled rejection at every start. Required, the module is read only where it is used.
const require = createRequire(import.meta.url);

export const nodeHttp = require('node:http') as typeof import('node:http');
export const nodeHttps = require('node:https') as typeof import('node:https');
