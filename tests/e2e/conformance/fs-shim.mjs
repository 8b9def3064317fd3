// node:fs as Node 20 has it, plus the Node 22 `globSync` (built on the glob package) the conformance dist imports.
import fs from 'node:fs';
import { globSync as globPackageSync } from 'glob';

export * from 'node:fs';
export default fs;

export function globSync(pattern, options = {}) {
  return globPackageSync(pattern, { cwd: options.cwd, withFileTypes: options.withFileTypes ?? false });
}
