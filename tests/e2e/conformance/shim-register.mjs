// Lets @modelcontextprotocol/conformance 0.1.16 start on Node 20: its dist imports `globSync` from 'fs', which
// only Node >= 22 has. Use: node --import ./shim-register.mjs .tools/conformance/node_modules/.bin/conformance ...
import { register } from 'node:module';

register('./shim-hooks.mjs', import.meta.url);
