// Resolve hooks: the conformance dist's `fs` import becomes fs-shim.mjs (node:fs plus globSync); the shim's own
// `glob` import resolves from the conformance package, whose node_modules tree holds the pinned glob package.
const SHIM_URL = new URL('./fs-shim.mjs', import.meta.url).href;
const CONFORMANCE_DIST = '/@modelcontextprotocol/conformance/dist/';
let conformanceParent = null;

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL ?? '';
  if ((specifier === 'fs' || specifier === 'node:fs') && parent.includes(CONFORMANCE_DIST)) {
    conformanceParent = parent;
    return { url: SHIM_URL, shortCircuit: true };
  }
  if (specifier === 'glob' && parent === SHIM_URL && conformanceParent) {
    return nextResolve(specifier, { ...context, parentURL: conformanceParent });
  }
  return nextResolve(specifier, context);
}
