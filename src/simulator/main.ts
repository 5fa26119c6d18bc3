#!/usr/bin/env node
import { run } from './app.js';

// Exit explicitly: a keypress reader or a viewfinder timer must not keep a finished run alive.
process.exit(await run(process.argv.slice(2), process.env));
