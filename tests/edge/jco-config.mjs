// `wasi:config/store` for `jco serve`, which has no implementation of it:
// loaded with `jco serve --jco-import tests/edge/jco-config.mjs` (tests/edge/e2e.sh).
//
// The stand-in for an edge runtime's configuration, the same as edge-serve's:
// the process's `ACTIONBOX_*` environment variables with their names
// lower-cased (`ACTIONBOX_API_KEY` -> `actionbox_api_key`), nothing else.
//
// `jco serve --isolate-requests` instantiates every request with
// `new WASIShim().getImportObject()` and offers no option to add an import, so
// this wraps that method (of the same preview2-shim module instance: node
// resolves the symlink jco puts in its output directory to this path).
import process from "node:process";

const shim = new URL(
  "../jco/node_modules/@bytecodealliance/preview2-shim/dist/common/instantiation.js",
  import.meta.url,
);
const { WASIShim } = await import(shim);

const settings = new Map(
  Object.entries(process.env)
    .filter(([name]) => name.startsWith("ACTIONBOX_"))
    .map(([name, value]) => [name.toLowerCase(), value]),
);

// jco's conventions: a returned value is `ok`; `undefined` is `none`.
const store = {
  get: (key) => settings.get(key),
  getAll: () => [...settings.entries()],
};

const getImportObject = WASIShim.prototype.getImportObject;
WASIShim.prototype.getImportObject = function (opts) {
  return { ...getImportObject.call(this, opts), "wasi:config/store": store };
};
