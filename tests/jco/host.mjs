#!/usr/bin/env node
// A second, independent host for actionbox smart actions: Node.js running the
// unmodified component after `jco transpile`, with the host side of the
// contract written here instead of in Rust/wasmtime.
//
//   node tests/jco/host.mjs describe
//   node tests/jco/host.mjs run <METHOD> --input JSON [--base-url URL] [--timeout SECS] [--api-key-file PATH]
//   node tests/jco/host.mjs test-connection [--base-url URL] [--timeout SECS] [--api-key-file PATH]
//
// The component must export `actionbox:action/action@0.2.0` (contract 0.2.0);
// `run` calls its `invoke`, `test-connection` its `test-connection` (the
// integration's Test button), `describe` its `describe`.
//
// Options for all: --bindings FILE (the transpiled component's .js; default
// target/jco/shipstation/shipstation.js, or $ACTIONBOX_JCO_BINDINGS).
// The key comes from --api-key-file or $SHIPSTATION_API_KEY, as with
// `actionbox run`; it is handed only to the outbound wrapper (outbound.mjs),
// never to the action. Log level: $ACTIONBOX_JCO_LOG (trace, debug, info,
// warn [default], error, off).
//
// Output mirrors `actionbox run` (for `test-connection` too: the result JSON
// that `actionbox test-connection` sums up as `OK: <message>`): the result
// JSON on stdout and exit 0, or one line on stderr,
// `error: {"tag": <kind>, "val": <payload>}` (the typed action-error as jco
// represents it, or a sandbox failure of the same kinds the Rust host
// reports), with the same exit code per kind. Setup problems are
// `error: <text>` and exit 1; usage errors exit 2.

import { Worker } from "node:worker_threads";
import { existsSync, readFileSync, writeSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { validateHeaderName } from "node:http";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  checkApiKey,
  DEFAULT_TIMEOUT_SECS,
  DESCRIBE_TIMEOUT_MS,
  EXIT_CODES,
  isPublicAddress,
  manifestAllowsBase,
  MAX_TIMEOUT_SECS,
  MIN_TIMEOUT_SECS,
  parseBaseUrl,
} from "./policy.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const API_KEY_ENV = "SHIPSTATION_API_KEY";
const LEVELS = ["trace", "debug", "info", "warn", "error", "off"];
const USAGE = `usage:
  host.mjs describe [--bindings FILE]
  host.mjs run <METHOD> [--input JSON] [--base-url URL] [--timeout SECS] [--api-key-file PATH] [--bindings FILE]
  host.mjs test-connection [--base-url URL] [--timeout SECS] [--api-key-file PATH] [--bindings FILE]`;

function out(text) {
  writeSync(1, `${text}\n`);
}

function err(text) {
  writeSync(2, `${text}\n`);
}

/** Print `error: <message>` and exit with `code`. */
function die(message, code = 1) {
  err(`error: ${message}`);
  process.exit(code);
}

/** Print a typed failure (`{tag, val}`) and exit with its kind's code. */
function failWith(error) {
  err(`error: ${JSON.stringify(error)}`);
  process.exit(EXIT_CODES[error.tag] ?? 1);
}

// ---- arguments -------------------------------------------------------------

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      input: { type: "string" },
      "base-url": { type: "string" },
      timeout: { type: "string", default: String(DEFAULT_TIMEOUT_SECS) },
      "api-key-file": { type: "string" },
      bindings: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
} catch (e) {
  die(`${e.message}\n${USAGE}`, 2);
}
const { values: opts, positionals } = parsed;
if (opts.help) {
  out(USAGE);
  process.exit(0);
}
const [command, method, ...extra] = positionals;
const COMMANDS = ["describe", "run", "test-connection"];
if (!COMMANDS.includes(command) || (command === "run" && !method) || extra.length > 0) {
  die(`expected \`describe\`, \`run <METHOD>\` or \`test-connection\`\n${USAGE}`, 2);
}
if (command !== "run" && method !== undefined) die(`${command} takes no method\n${USAGE}`, 2);
if (command !== "run" && opts.input !== undefined) die(`${command} takes no --input\n${USAGE}`, 2);
if (!/^[0-9]+$/.test(opts.timeout)) die(`invalid value '${opts.timeout}' for '--timeout <SECS>'\n${USAGE}`, 2);

const logLevel = (process.env.ACTIONBOX_JCO_LOG ?? "warn").toLowerCase();
const minLevel = LEVELS.includes(logLevel) ? LEVELS.indexOf(logLevel) : LEVELS.indexOf("warn");

const bindings = resolve(
  opts.bindings ?? process.env.ACTIONBOX_JCO_BINDINGS ?? resolve(here, "../../target/jco/shipstation/shipstation.js"),
);
if (!existsSync(bindings)) {
  die(`${bindings} is missing: run \`make test\` (it runs npm ci in tests/jco and jco transpile into target/jco)`);
}
if (!existsSync(resolve(here, "node_modules/@bytecodealliance/preview2-shim"))) {
  die(`${resolve(here, "node_modules")} is missing: run \`make test\` (it runs npm ci in tests/jco)`);
}

// ---- integration settings (as `actionbox run` checks them) -----------------

let timeoutSecs;
let base;
let apiKey;
if (command !== "describe") {
  timeoutSecs = Number(opts.timeout);
  if (timeoutSecs < MIN_TIMEOUT_SECS || timeoutSecs > MAX_TIMEOUT_SECS) {
    die(
      `--timeout: timeout ${timeoutSecs} s is out of range: it must be between ${MIN_TIMEOUT_SECS} and ` +
        `${MAX_TIMEOUT_SECS} seconds (default ${DEFAULT_TIMEOUT_SECS})`,
    );
  }
  if (opts["api-key-file"] !== undefined) {
    const path = opts["api-key-file"];
    let raw;
    try {
      raw = readFileSync(path, "utf8");
    } catch (e) {
      die(`cannot read the API key file ${path}: ${e.message}`);
    }
    try {
      apiKey = checkApiKey(raw);
    } catch (e) {
      die(`API key file ${path}: ${e.message}`);
    }
  } else if (process.env[API_KEY_ENV] !== undefined) {
    try {
      apiKey = checkApiKey(process.env[API_KEY_ENV]);
    } catch (e) {
      die(`environment variable ${API_KEY_ENV}: ${e.message}`);
    }
  }
}
// The key lives on only in `apiKey`; the sandbox thread gets an empty environment.
delete process.env[API_KEY_ENV];

// ---- the sandbox thread ------------------------------------------------------

const worker = new Worker(new URL("./sandbox.mjs", import.meta.url), {
  workerData: { bindings },
  env: {},
  argv: [],
  execArgv: [],
  stdin: false,
  // The guest's own stdout/stderr never reach these (sandbox.mjs captures
  // them); only the thread's JS-level output does. Keep our stdout for the result.
  stdout: true,
  stderr: true,
});
worker.stdout.pipe(process.stderr);
worker.stderr.pipe(process.stderr);

let finished = false;
let timer = setTimeout(
  () => die(`describe() did not return within ${DESCRIBE_TIMEOUT_MS / 1000} s`),
  DESCRIBE_TIMEOUT_MS,
);

function finish(fn) {
  finished = true;
  clearTimeout(timer);
  fn();
}

function printLog({ source, level, message }) {
  if (LEVELS.indexOf(level) >= minLevel) err(`[${source} ${level}] ${message}`);
}

async function addressRefusal(baseUrl) {
  // The Rust host resolves the base host before every connection and refuses
  // non-public addresses unless the base URL itself names one. This host
  // cannot hook the shim's connection, so it checks once, up front.
  if (baseUrl.targetsPrivateNetwork()) return null;
  let addrs;
  try {
    addrs = await lookup(baseUrl.host, { all: true, verbatim: true });
  } catch {
    return null; // the request itself will fail to resolve, and say so
  }
  const bad = addrs.find((a) => !isPublicAddress(a.address));
  if (!bad) return null;
  return (
    `${baseUrl.host} resolves to the non-public address ${bad.address}; private, loopback and link-local ` +
    "ranges are reachable only when the integration's base_url itself names one"
  );
}

async function onManifest(manifest) {
  if (command === "describe") {
    finish(() => out(JSON.stringify(manifest, null, 2)));
    process.exit(0);
  }
  try {
    base = parseBaseUrl(opts["base-url"] ?? manifest.defaultBaseUrl);
  } catch (e) {
    die(`--base-url: ${e.message}`);
  }
  if (apiKey === undefined && manifest.credential) {
    die(
      `this action needs a ${manifest.credential.name}: set the ${API_KEY_ENV} environment variable or pass --api-key-file PATH`,
    );
  }
  const deadlineAt = Date.now() + timeoutSecs * 1000;
  clearTimeout(timer);
  timer = setTimeout(
    () =>
      failWith({
        tag: "timeout",
        val: `the action did not finish within the integration's timeout of ${timeoutSecs} s and was stopped`,
      }),
    timeoutSecs * 1000,
  );
  if (command === "run" && !manifest.methods.some((m) => m.name === method || m.displayName === method)) {
    const offered = manifest.methods.map((m) => `${m.displayName} (${m.name})`).join(", ");
    failWith({ tag: "invalid-input", val: `this action has no method \`${method}\`; it offers: ${offered}` });
  }
  const credentialHeader = manifest.credential?.header;
  if (credentialHeader !== undefined) {
    try {
      validateHeaderName(credentialHeader);
    } catch {
      die(`the action's manifest names an invalid credential header \`${credentialHeader}\``);
    }
  }
  const allowsBase = manifestAllowsBase(manifest.outboundHosts, base);
  if (!allowsBase) {
    printLog({
      source: "host",
      level: "warn",
      message: `the action's manifest declares hosts ${JSON.stringify(manifest.outboundHosts)}, not the base URL host \`${base.host}\`; every request it makes will be denied`,
    });
  }
  worker.postMessage({
    op: "call",
    method: command === "run" ? method : null,
    input: opts.input ?? "{}",
    baseUrl: base.toString(),
    allowsBase,
    credentialHeader,
    apiKey,
    deadlineAt,
    addressRefusal: await addressRefusal(base),
  });
}

worker.on("message", (msg) => {
  switch (msg.type) {
    case "log":
      printLog(msg);
      break;
    case "manifest":
      onManifest(msg.manifest).catch((e) => die(`host failure: ${e?.stack ?? e}`));
      break;
    case "fatal":
      finish(() => die(msg.message));
      break;
    case "done":
      finish(() => {
        if (msg.error) failWith(msg.error);
        out(JSON.stringify(msg.value, null, 2));
        process.exit(0);
      });
      break;
    default:
      break;
  }
});
worker.on("error", (e) => finish(() => die(`the sandbox thread failed: ${e?.stack ?? e}`)));
worker.on("exit", (code) => {
  if (!finished) die(`the sandbox thread exited (code ${code}) before the call finished`);
});
