// Worker thread that runs the action component (transpiled by jco) for
// host.mjs. The main thread keeps the clock: it can stop this thread at the
// deadline even while the guest spins or blocks (wasm in the main thread could
// not be interrupted by a timer).
//
// Like the Rust host, every call gets a fresh instance: one for `describe`
// (every request refused, no settings), one for `invoke` or `test-connection`.
// The component must export `actionbox:action/action@0.2.0`; one built
// against contract 0.1.0 is refused before it is instantiated.
//
// What the component gets, interface by interface:
//   wasi:config/store          `base_url` (normalized), nothing else
//   actionbox:action/log       lines posted to the main thread (stderr there), capped
//   wasi:http/*                outbound.mjs: base-URL origin only, key injected by the host
//   wasi:clocks/monotonic-clock, wasi:io/*   preview2-shim
//   wasi:cli/environment       empty environment, no arguments, no cwd
//   wasi:cli/exit              traps the call (the action may not end the host)
//   wasi:cli/stdin             traps the call (no stdin is provided)
//   wasi:cli/stdout            discarded (as the Rust host does)
//   wasi:cli/stderr            captured (16 KiB) and quoted when the call traps
//   wasi:cli/terminal-*        "not a terminal"
// Anything else (wasi:filesystem, wasi:sockets, …) is not provided, so a
// component importing it fails to instantiate: nothing is granted by accident.

import { parentPort, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { dirname, join } from "node:path";
import * as cli from "@bytecodealliance/preview2-shim/cli";
import * as clocks from "@bytecodealliance/preview2-shim/clocks";
import * as io from "@bytecodealliance/preview2-shim/io";
import { sandboxedHttp } from "./outbound.mjs";
import { GUEST_BUDGET_RESERVE_MS, guestText, LIMITS, parseBaseUrl } from "./policy.mjs";

/** The contract this host implements: the interface the component must export. */
const CONTRACT_EXPORT = "actionbox:action/action@0.2.0";
/** Interfaces only contract 0.1.0 had; a component importing one was built against it. */
const CONTRACT_0_1_IMPORTS = ["actionbox:action/settings", "actionbox:action/types"];
const REBUILD = "rebuild it against actionbox:action@0.2.0 (wit/world.wit, world smart-action)";

/** Post a message to the main thread. */
function send(message) {
  parentPort.postMessage(message);
}

/** A value jco produced, as plain JSON: `undefined` (a WIT `none`) becomes null, bigints numbers. */
function plain(value) {
  if (value === undefined || value === null) return null;
  if (typeof value === "bigint") return Number(value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const coreModules = new Map();
function getCoreModule(name) {
  if (!coreModules.has(name)) {
    coreModules.set(name, new WebAssembly.Module(readFileSync(join(dirname(workerData.bindings), name))));
  }
  return coreModules.get(name);
}

class GuestExit extends Error {}

/** Bytes of guest stderr kept, and quoted in a trap message (host/src/state.rs, invoke.rs). */
const STDERR_CAPTURE_BYTES = 16 * 1024;
const STDERR_QUOTE_BYTES = 2048;

/**
 * An output stream that hands what the guest writes to `sink` instead of a
 * file descriptor. A subclass of the shim's OutputStream, because the
 * transpiled component checks `instanceof` on every stream it is given.
 */
class CapturedOutput extends io.streams.OutputStream {
  #sink;

  constructor(sink) {
    super();
    this.#sink = sink;
  }

  checkWrite() {
    return 1n << 20n;
  }

  write(buf) {
    this.#sink(buf);
  }

  blockingWriteAndFlush(buf) {
    this.#sink(buf);
  }

  flush() {}

  blockingFlush() {}

  writeZeroes(len) {
    this.#sink(new Uint8Array(Number(len)));
  }

  blockingWriteZeroesAndFlush(len) {
    this.#sink(new Uint8Array(Number(len)));
  }

  splice(src, len) {
    const data = src.read(len);
    this.#sink(data);
    return BigInt(data.length);
  }

  blockingSplice(src, len) {
    const data = src.blockingRead(len);
    this.#sink(data);
    return BigInt(data.length);
  }

  subscribe() {
    return clocks.monotonicClock.subscribeDuration(0n);
  }
}

/** The guest's stderr: the first STDERR_CAPTURE_BYTES bytes. */
function stderrCapture() {
  const chunks = [];
  let size = 0;
  const sink = (buf) => {
    const room = STDERR_CAPTURE_BYTES - size;
    if (room <= 0) return;
    const piece = Uint8Array.from(buf.subarray(0, room));
    chunks.push(piece);
    size += piece.length;
  };
  /** As the Rust host's `stderr_text`: trimmed, lines joined by ` | `, defused. */
  const text = () =>
    new TextDecoder()
      .decode(Buffer.concat(chunks))
      .trim()
      .split("\n")
      .map((l) => guestText(l.replace(/\r$/, ""), STDERR_CAPTURE_BYTES))
      .join(" | ");
  return { sink, text };
}

/** The last STDERR_QUOTE_BYTES bytes of `text`, starting on a character boundary. */
function tail(text) {
  const bytes = Buffer.from(text, "utf8");
  let start = Math.max(0, bytes.length - STDERR_QUOTE_BYTES);
  while (start < bytes.length && (bytes[start] & 0xc0) === 0x80) start += 1;
  return bytes.subarray(start).toString("utf8");
}

/** The import object for one instance. */
function imports({ settings, http, log, stderr }) {
  const exit = () => {
    throw new GuestExit("the action called wasi:cli/exit");
  };
  return {
    "wasi:config/store": {
      get: (key) => (Object.hasOwn(settings, key) ? settings[key] : undefined),
      getAll: () => Object.entries(settings),
    },
    "actionbox:action/log": { write: log },
    "wasi:cli/environment": {
      getEnvironment: () => [],
      getArguments: () => [],
      initialCwd: () => undefined,
    },
    "wasi:cli/exit": { exit, exitWithCode: exit },
    "wasi:cli/stdin": {
      getStdin() {
        throw new Error("the action tried to read stdin, which this host does not provide");
      },
    },
    "wasi:cli/stdout": { getStdout: () => new CapturedOutput(() => {}) },
    "wasi:cli/stderr": { getStderr: () => new CapturedOutput(stderr.sink) },
    "wasi:cli/terminal-input": cli.terminalInput,
    "wasi:cli/terminal-output": cli.terminalOutput,
    "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
    "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
    "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
    "wasi:clocks/monotonic-clock": clocks.monotonicClock,
    "wasi:io/error": io.error,
    "wasi:io/poll": io.poll,
    "wasi:io/streams": io.streams,
    "wasi:http/types": http.types,
    "wasi:http/outgoing-handler": http.outgoingHandler,
  };
}

/** The guest's log, within the Rust host's byte budget, forwarded to the main thread. */
function guestLog(startedAt) {
  let bytes = 0;
  let dropped = 0;
  const write = (level, message) => {
    if (bytes >= LIMITS.maxLogBytes) {
      dropped += 1;
      return;
    }
    const text = guestText(message, LIMITS.guestLogLineBytes);
    bytes += Buffer.byteLength(text, "utf8");
    send({ type: "log", source: "guest", level, message: text, atMs: Date.now() - startedAt });
  };
  write.dropped = () => dropped;
  return write;
}

function hostLog(level, message) {
  send({ type: "log", source: "host", level, message });
}

/** Sanitize an `action-error` payload the way the Rust host's `From<ActionError>` does. */
function actionError(payload) {
  const clean = (m) => guestText(m, LIMITS.maxGuestMessageBytes);
  const { tag, val } = payload;
  if (typeof val === "string") return { tag, val: clean(val) };
  if (tag === "rate-limited") {
    return { tag, val: { retryAfterSecs: plain(val.retryAfterSecs), message: clean(val.message) } };
  }
  if (tag === "upstream") {
    return {
      tag,
      val: {
        status: plain(val.status),
        message: clean(val.message),
        requestId: val.requestId === undefined ? null : guestText(val.requestId, 128),
      },
    };
  }
  return { tag: String(tag), val: plain(val) };
}

/** What a trap or host failure inside the call becomes; `printed` is the guest's stderr. */
function failure(e, printed = "") {
  if (e && Object.hasOwn(e, "payload") && e.payload && typeof e.payload.tag === "string") {
    return actionError(e.payload);
  }
  let message;
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    message = "the action overflowed its stack (runaway recursion?)";
  } else if (e instanceof WebAssembly.RuntimeError) {
    message = `the action crashed: ${guestText(e.message, LIMITS.maxGuestMessageBytes)}`;
  } else {
    const text = e instanceof Error ? e.message : String(e);
    message = `the action failed in the host: ${guestText(text, LIMITS.maxGuestMessageBytes)}`;
  }
  if (printed !== "") message += `; it printed: ${tail(printed)}`;
  return { tag: "trap", val: message };
}

let instantiate;

/**
 * Why the transpiled component cannot run in this host, judged from its JS
 * before anything is instantiated, or null. jco drops versions from import
 * keys, so a 0.1.0 component is recognised by the interfaces only 0.1.0 had.
 */
function contractMismatch(source) {
  const imported = (name) => source.includes(`imports['${name}']`) || source.includes(`imports["${name}"]`);
  const old = CONTRACT_0_1_IMPORTS.find(imported);
  if (old === undefined) return null;
  return `the component was built against actionbox:action@0.1.0 (it imports ${old}); this host runs 0.2.0: ${REBUILD}`;
}

/** The exported `action` interface of an instance, or a reason it has none. */
function exportedAction(instance) {
  if (instance?.[CONTRACT_EXPORT]) return { action: instance[CONTRACT_EXPORT] };
  const other = Object.keys(instance ?? {}).find((k) => k.startsWith("actionbox:action/action@"));
  if (other !== undefined) {
    return { refusal: `the component exports ${other}, not ${CONTRACT_EXPORT}: ${REBUILD}` };
  }
  if (typeof instance?.describe === "function") {
    return {
      refusal: `the component exports describe/invoke at the world level, as actionbox:action@0.1.0 did: ${REBUILD}`,
    };
  }
  return { refusal: `the component does not export ${CONTRACT_EXPORT}: ${REBUILD}` };
}

/** A fresh instance's `action` export; throws when it has none. */
function instantiateAction(importObject) {
  const { action, refusal } = exportedAction(instantiate(getCoreModule, importObject));
  if (refusal) throw new Error(refusal);
  return action;
}

async function describe() {
  const mismatch = contractMismatch(readFileSync(workerData.bindings, "utf8"));
  if (mismatch) {
    send({ type: "fatal", message: mismatch });
    return;
  }
  ({ instantiate } = await import(pathToFileURL(workerData.bindings).href));
  const violations = [];
  const http = sandboxedHttp({
    base: null,
    allowsBase: false,
    credentialHeader: undefined,
    apiKey: undefined,
    deadlineAt: Infinity,
    onViolation: (v) => violations.push(v),
  });
  let instance;
  try {
    instance = instantiate(
      getCoreModule,
      imports({ settings: {}, http, log: guestLog(Date.now()), stderr: stderrCapture() }),
    );
  } catch (e) {
    send({ type: "fatal", message: `the component could not be instantiated: ${e?.message ?? e}` });
    return;
  }
  const { action, refusal } = exportedAction(instance);
  if (refusal) {
    send({ type: "fatal", message: refusal });
    return;
  }
  try {
    send({ type: "manifest", manifest: plain(action.describe()) });
  } catch (e) {
    send({ type: "fatal", message: `describe() failed: ${failure(e).val}` });
  }
}

/**
 * One call: `invoke(method, input)` or, for `method === null`, the
 * component's `test-connection`, in a fresh instance under the sandbox.
 */
function call({ method, input, baseUrl, allowsBase, credentialHeader, apiKey, deadlineAt, addressRefusal }) {
  const startedAt = Date.now();
  const violations = [];
  const http = sandboxedHttp({
    base: baseUrl,
    allowsBase,
    credentialHeader,
    apiKey,
    deadlineAt,
    addressRefusal,
    onViolation(v) {
      violations.push(v);
      hostLog("warn", `${v.kind === "denied" ? "denied" : "limit exceeded"}: ${v.message}`);
    },
    onRequest({ method: m, url, credential, dropped }) {
      hostLog("debug", `${m} ${url}${credential ? ` (${credentialHeader} added by the host)` : ""}`);
      if (dropped.length > 0) {
        hostLog("warn", `dropped credential header(s) the action set itself: ${dropped.join(", ")}`);
      }
    },
  });
  const log = guestLog(startedAt);
  const stderr = stderrCapture();
  const settings = { base_url: baseUrl.toString() };
  let outcome;
  try {
    const action = instantiateAction(imports({ settings, http, log, stderr }));
    const ctx = {
      budgetMs: BigInt(Math.max(0, deadlineAt - Date.now() - GUEST_BUDGET_RESERVE_MS)),
      invocationId: "inv-1",
    };
    outcome = { text: method === null ? action.testConnection(ctx) : action.invoke(method, input, ctx) };
  } catch (e) {
    outcome = { error: failure(e, stderr.text()) };
  }
  if (outcome.text !== undefined) {
    const bytes = Buffer.byteLength(outcome.text, "utf8");
    if (bytes > LIMITS.maxResultBytes) {
      outcome = {
        error: {
          tag: "limit-exceeded",
          val: `the action returned a ${bytes} byte result; results are limited to ${LIMITS.maxResultBytes} bytes (limits.max_result_bytes)`,
        },
      };
    } else {
      try {
        outcome = { value: JSON.parse(outcome.text) };
      } catch (e) {
        outcome = { error: { tag: "invalid-output", val: `the action's result is not valid JSON: ${e.message}` } };
      }
    }
  }
  // As in the Rust host: when the sandbox stopped something and the call then
  // failed, the host's own account replaces the guest's.
  if (outcome.error && violations.length > 0 && outcome.error.tag !== "timeout") {
    outcome = { error: { tag: violations[0].kind, val: violations[0].message } };
  }
  if (log.dropped() > 0) hostLog("warn", `${log.dropped()} guest log line(s) dropped past the log budget`);
  send({ type: "done", ...outcome, elapsedMs: Date.now() - startedAt });
}

parentPort.on("message", (msg) => {
  if (msg.op === "call") call({ ...msg, baseUrl: parseBaseUrl(msg.baseUrl) });
});

await describe();
