// host.mjs as a program, driven with a JS stand-in component
// (fixtures/fake-action.mjs) for the behaviours the ShipStation component
// never shows. The ShipStation component itself is compared with the Rust
// host by tests/e2e/tests/jco.rs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const HOST = fileURLToPath(new URL("../host.mjs", import.meta.url));
const FAKE = fileURLToPath(new URL("./fixtures/fake-action.mjs", import.meta.url));
const CONTRACT_0_1_0 = fileURLToPath(new URL("./fixtures/contract-0.1.0.mjs", import.meta.url));
const KEY = "TEST_cli_key_never_shown_to_the_action";

/** Run host.mjs on `bindings`; resolves to { code, stdout, stderr, ms }. */
function host(args, env = {}, bindings = FAKE) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HOST, ...args, "--bindings", bindings], {
      env: { PATH: process.env.PATH, ACTIONBOX_JCO_LOG: "trace", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

const run = (method, extra = [], env = {}) =>
  host(["run", method, "--base-url", "http://127.0.0.1:9", ...extra], { SHIPSTATION_API_KEY: KEY, ...env });

function errorOf(out) {
  const lines = out.stderr.split("\n").filter((l) => l.startsWith("error: "));
  assert.equal(lines.length, 1, out.stderr);
  return JSON.parse(lines[0].slice("error: ".length));
}

test("a spinning action is stopped at the deadline with `timeout`", async () => {
  const out = await run("spin", ["--timeout", "10"]);
  assert.equal(out.code, 15, out.stderr);
  assert.deepEqual(errorOf(out), {
    tag: "timeout",
    val: "the action did not finish within the integration's timeout of 10 s and was stopped",
  });
  assert.ok(out.ms >= 10_000 && out.ms < 13_000, `stopped after ${out.ms} ms`);
});

test("the action sees no environment, no arguments and no key; only the base_url setting", async () => {
  const out = await run("env");
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), {
    environment: [],
    arguments: [],
    baseUrl: "http://127.0.0.1:9",
    other: null,
    all: [["base_url", "http://127.0.0.1:9"]],
  });
  assert.ok(!out.stdout.includes(KEY) && !out.stderr.includes(KEY));
});

test("the budget is the timeout minus the host's reserve", async () => {
  const out = await run("echo-budget", ["--timeout", "20", "--input", '{"a":1}']);
  assert.equal(out.code, 0, out.stderr);
  const v = JSON.parse(out.stdout);
  assert.ok(v.budgetMs > 18_000 && v.budgetMs <= 19_900, `budget ${v.budgetMs}`);
  assert.equal(v.invocationId, "inv-1");
  assert.equal(v.input, '{"a":1}');
});

test("calling exit is a trap, not the end of the host", async () => {
  const out = await run("exit");
  assert.equal(out.code, 19, out.stderr);
  assert.deepEqual(errorOf(out), { tag: "trap", val: "the action failed in the host: the action called wasi:cli/exit" });
});

test("guest stdout is discarded, never mixed into the result; guest log lines are escaped", async () => {
  const out = await run("stdout");
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), { printed: true });
  assert.ok(!out.stderr.includes("guest stdout text"), out.stderr);
  assert.match(out.stderr, /\[guest warn\] line\\u\{1b\}\[31m from the guest\\u\{a\}forged/);
});

test("a trap quotes what the action printed on stderr", async () => {
  const out = await run("panic");
  assert.equal(out.code, 19, out.stderr);
  assert.deepEqual(errorOf(out), {
    tag: "trap",
    val: "the action crashed: unreachable; it printed: thread 'main' panicked at src/lib.rs:1:1: | on purpose",
  });
});

test("oversized and non-JSON results are refused like the Rust host does", async () => {
  const huge = await run("huge");
  assert.equal(huge.code, 21, huge.stderr);
  assert.match(errorOf(huge).val, /^the action returned a 2097154 byte result; results are limited to 1048576 bytes/);
  const bad = await run("not-json");
  assert.equal(bad.code, 20, bad.stderr);
  assert.match(errorOf(bad).val, /^the action's result is not valid JSON: /);
});

test("typed errors keep their record and are defused", async () => {
  const out = await run("hostile-error");
  assert.equal(out.code, 14, out.stderr);
  assert.deepEqual(errorOf(out), {
    tag: "upstream",
    val: { status: 502, message: "bad\\u{1b}[2J\\u{a}gateway", requestId: null },
  });
});

test("test-connection calls the component's own export with the settings and a budget", async () => {
  const out = await host(["test-connection", "--base-url", "http://127.0.0.1:9/prefix/", "--timeout", "20"], {
    SHIPSTATION_API_KEY: KEY,
  });
  assert.equal(out.code, 0, out.stderr);
  const v = JSON.parse(out.stdout);
  assert.equal(v.message, "the fake accepts any key");
  assert.equal(v.baseUrl, "http://127.0.0.1:9/prefix", "the normalized base URL, as for run");
  assert.ok(v.budgetMs > 18_000 && v.budgetMs <= 19_900, `budget ${v.budgetMs}`);
  assert.equal(v.invocationId, "inv-1");
  assert.ok(!out.stdout.includes(KEY) && !out.stderr.includes(KEY));
});

test("describe shows the contract-0.2.0 manifest with its default actions", async () => {
  const out = await host(["describe"]);
  assert.equal(out.code, 0, out.stderr);
  const m = JSON.parse(out.stdout);
  assert.deepEqual(m.defaultActions, [
    {
      name: "echoBudget",
      method: "echo-budget",
      description: null,
      execution: "during-interaction",
      trigger: "inbound",
      parameterDescriptions: [],
      responseInstructions: null,
    },
  ]);
});

test("a component built against contract 0.1.0 is refused before it runs, saying what to rebuild against", async () => {
  for (const args of [["describe"], ["run", "trackOrder", "--base-url", "http://127.0.0.1:9"], ["test-connection"]]) {
    const out = await host(args, { SHIPSTATION_API_KEY: KEY }, CONTRACT_0_1_0);
    assert.equal(out.code, 1, out.stderr);
    assert.equal(
      out.stderr.trim(),
      "error: the component was built against actionbox:action@0.1.0 (it imports actionbox:action/settings); " +
        "this host runs 0.2.0: rebuild it against actionbox:action@0.2.0 (wit/world.wit, world smart-action)",
    );
    assert.equal(out.stdout, "");
  }
});

test("settings are checked before anything runs", async () => {
  const slow = await run("env", ["--timeout", "5"]);
  assert.equal(slow.code, 1);
  assert.match(slow.stderr, /between 10 and 180/);
  const plain = await host(["run", "env", "--base-url", "http://api.example.com"]);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /plain http to a non-loopback host/);
  const usage = await host(["run"]);
  assert.equal(usage.code, 2);
  for (const args of [["test-connection", "env"], ["test-connection", "--input", "{}"], ["describe", "env"]]) {
    const wrong = await host(args);
    assert.equal(wrong.code, 2, `${args.join(" ")}: ${wrong.stderr}`);
  }
  const slowTest = await host(["test-connection", "--timeout", "5"], { SHIPSTATION_API_KEY: KEY });
  assert.equal(slowTest.code, 1);
  assert.match(slowTest.stderr, /between 10 and 180/);
  const unknown = await run("nope");
  assert.equal(unknown.code, 10);
  assert.match(errorOf(unknown).val, /^this action has no method `nope`; it offers: spin \(spin\)/);
});
