/**
 * The floor under a node's start-up: a process that only imports the libraries every node loads
 * (fastify, mqtt, pino, execa) and then runs its first line. bench/budget.ts measures its CPU.
 */
await Promise.all([import('fastify'), import('mqtt'), import('pino'), import('execa')]);
process.stdout.write('ready\n');
setInterval(() => undefined, 1e6);
