// Unit tests of the JS host's policy and its wasi:http wrapper (node --test).
// The wrapper is driven exactly as a guest drives it through jco: build
// `fields`, an `outgoing-request`, call `outgoing-handler.handle`, block on the
// future and read the body. The servers it talks to run in a worker thread on
// 127.0.0.1 (the shim blocks this thread while a request is in flight), echo
// what they received, and count their hits.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { once } from "node:events";
import { sandboxedHttp } from "../outbound.mjs";
import {
  guestText,
  isPublicAddress,
  LIMITS,
  manifestAllowsBase,
  parseBaseUrl,
  refusal,
} from "../policy.mjs";

const KEY = "TEST_js_host_unit_key";
const enc = new TextEncoder();
const dec = new TextDecoder();

const SERVERS = `
const { parentPort } = require("node:worker_threads");
const http = require("node:http");
const hits = { base: 0, other: 0 };
function server(name) {
  const s = http.createServer((req, res) => {
    hits[name] += 1;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ server: name, url: req.url, headers: req.headersDistinct }));
  });
  return new Promise((r) => s.listen(0, "127.0.0.1", () => r(s.address().port)));
}
Promise.all([server("base"), server("other")]).then(([base, other]) => parentPort.postMessage({ base, other }));
parentPort.on("message", () => parentPort.postMessage({ ...hits }));
`;

let servers;
let ports;

before(async () => {
  servers = new Worker(SERVERS, { eval: true });
  [ports] = await once(servers, "message");
});

after(async () => {
  await servers.terminate();
});

async function hits() {
  servers.postMessage("hits");
  const [h] = await once(servers, "message");
  return h;
}

/** A wrapper for base URL `http://127.0.0.1:<base port>` with the key, plus its violations. */
function wrapper(overrides = {}) {
  const violations = [];
  const base = parseBaseUrl(`http://127.0.0.1:${ports.base}`);
  const http = sandboxedHttp({
    base,
    allowsBase: true,
    credentialHeader: "API-Key",
    apiKey: KEY,
    deadlineAt: Date.now() + 10_000,
    onViolation: (v) => violations.push(v),
    ...overrides,
  });
  return { http, violations };
}

/** Build a request the way a guest does. */
function guestRequest(http, { scheme = { tag: "HTTP" }, authority, path = "/v2/shipments", headers = [] }) {
  const fields = new http.types.Fields();
  for (const [name, value] of headers) fields.append(name, enc.encode(value));
  const request = new http.types.OutgoingRequest(fields);
  request.setScheme(scheme);
  request.setAuthority(authority);
  request.setPathWithQuery(path);
  return request;
}

/** Send it and return the echoed JSON body. */
function roundTrip(http, request) {
  const future = http.outgoingHandler.handle(request, undefined);
  future.subscribe().block();
  const result = future.get();
  assert.equal(result.tag, "ok");
  assert.equal(result.val.tag, "ok", JSON.stringify(result.val));
  const response = result.val.val;
  assert.equal(response.status(), 200);
  const stream = response.consume().stream();
  const chunks = [];
  for (;;) {
    try {
      chunks.push(...stream.blockingRead(65536n));
    } catch (e) {
      if (e?.tag === "closed") break;
      throw e;
    }
  }
  return JSON.parse(dec.decode(new Uint8Array(chunks)));
}

function denied(fn) {
  assert.throws(fn, (e) => e?.tag === "HTTP-request-denied");
}

const headerValues = (fields, name) => fields.get(name).map((v) => dec.decode(v));
const entryNames = (fields) => fields.entries().map(([n]) => n.toLowerCase());

test("the key goes to the base URL in the credential header, once, and guest credentials are dropped", async () => {
  const { http, violations } = wrapper();
  const request = guestRequest(http, {
    authority: `127.0.0.1:${ports.base}`,
    headers: [
      ["accept", "application/json"],
      ["API-Key", "guest-chosen-key"],
      ["authorization", "Bearer stolen"],
      ["Proxy-Authorization", "Basic x"],
    ],
  });
  const echoed = roundTrip(http, request);
  assert.equal(echoed.server, "base");
  assert.deepEqual(echoed.headers["api-key"], [KEY]);
  assert.equal(echoed.headers.authorization, undefined);
  assert.equal(echoed.headers["proxy-authorization"], undefined);
  assert.deepEqual(echoed.headers.accept, ["application/json"]);
  assert.deepEqual(violations, []);
  assert.equal((await hits()).base, 1);
});

test("the action can never read the key back from its request's headers", () => {
  const { http } = wrapper();
  const request = guestRequest(http, { authority: `127.0.0.1:${ports.base}`, headers: [["accept", "*/*"]] });
  const headers = request.headers();
  const look = () => {
    assert.deepEqual(headerValues(headers, "API-Key"), []);
    assert.ok(!entryNames(headers).includes("api-key"));
    assert.ok(!JSON.stringify(headers.entries().map(([n, v]) => [n, dec.decode(v)])).includes(KEY));
  };
  look();
  roundTrip(http, request);
  look();
  assert.throws(() => headers.append("api-key", enc.encode("x")), (e) => e?.tag === "immutable");
});

test("requests to any other origin are refused before anything is sent", async () => {
  const { http, violations } = wrapper();
  const before = await hits();
  const attempts = [
    { authority: `127.0.0.1:${ports.other}` }, // other port
    // Same machine under another name (127.0.0.1 in decimal): names are compared,
    // not what they resolve to. (Not `localhost`, which may mean ::1.)
    { authority: `2130706433:${ports.base}` },
    { authority: `127.0.0.1:${ports.base}`, scheme: { tag: "HTTPS" } }, // other scheme
    { authority: "127.0.0.1" }, // default port 80
  ];
  for (const attempt of attempts) denied(() => http.outgoingHandler.handle(guestRequest(http, attempt)));
  assert.equal(violations.length, attempts.length);
  for (const v of violations) {
    assert.equal(v.kind, "denied");
    assert.match(v.message, /^outbound request refused: .* is not the integration's base URL \(http:\/\/127\.0\.0\.1:\d+\)/);
  }
  assert.deepEqual(await hits(), before);
});

test("nothing is reachable when the manifest does not declare the base host, or while describing", async () => {
  const before = await hits();
  for (const overrides of [{ allowsBase: false }, { base: null }]) {
    const { http, violations } = wrapper(overrides);
    denied(() => http.outgoingHandler.handle(guestRequest(http, { authority: `127.0.0.1:${ports.base}` })));
    assert.match(violations[0].message, /does not declare the base URL host/);
  }
  assert.deepEqual(await hits(), before);
});

test("a non-public base address found up front refuses every request as destination-IP-prohibited", async () => {
  const before = await hits();
  const { http, violations } = wrapper({ addressRefusal: "api.example resolves to the non-public address 10.0.0.1" });
  assert.throws(
    () => http.outgoingHandler.handle(guestRequest(http, { authority: `127.0.0.1:${ports.base}` })),
    (e) => e?.tag === "destination-IP-prohibited",
  );
  assert.match(violations[0].message, /non-public address 10\.0\.0\.1/);
  assert.deepEqual(await hits(), before);
});

test("without a key no credential header is sent", () => {
  const { http } = wrapper({ apiKey: undefined });
  const echoed = roundTrip(http, guestRequest(http, { authority: `127.0.0.1:${ports.base}` }));
  assert.equal(echoed.headers["api-key"], undefined);
});

test(`at most ${LIMITS.maxOutboundRequests} requests per call`, async () => {
  const { http, violations } = wrapper();
  const before = (await hits()).base;
  for (let i = 0; i < LIMITS.maxOutboundRequests; i += 1) {
    roundTrip(http, guestRequest(http, { authority: `127.0.0.1:${ports.base}` }));
  }
  denied(() => http.outgoingHandler.handle(guestRequest(http, { authority: `127.0.0.1:${ports.base}` })));
  assert.equal(violations[0].kind, "limit-exceeded");
  assert.match(violations[0].message, /more than 16 outbound requests in one call \(limits\.max_outbound_requests\)/);
  assert.equal((await hits()).base, before + LIMITS.maxOutboundRequests);
});

test("after the deadline nothing is sent", async () => {
  const before = await hits();
  const { http } = wrapper({ deadlineAt: Date.now() - 1 });
  assert.throws(
    () => http.outgoingHandler.handle(guestRequest(http, { authority: `127.0.0.1:${ports.base}` })),
    (e) => e?.tag === "connection-timeout",
  );
  assert.deepEqual(await hits(), before);
});

test("base URLs are checked like the Rust host's BaseUrl::parse", () => {
  const b = parseBaseUrl("https://api.shipstation.com");
  assert.deepEqual([b.host, b.port, b.pathPrefix], ["api.shipstation.com", 443, ""]);
  assert.equal(b.toString(), "https://api.shipstation.com");
  assert.equal(b.targetsPrivateNetwork(), false);
  const local = parseBaseUrl("http://127.0.0.1:8080/mock/");
  assert.equal(local.toString(), "http://127.0.0.1:8080/mock");
  assert.equal(local.targetsPrivateNetwork(), true);
  assert.equal(parseBaseUrl("http://[::1]:9/").toString(), "http://[::1]:9");
  assert.equal(parseBaseUrl("HTTP://LocalHost:80").toString(), "http://localhost");
  for (const bad of [
    "http://api.shipstation.com",
    "ftp://x",
    "api.shipstation.com",
    "https://user:pw@api.shipstation.com",
    "https://x/?a=1",
    "",
    "https://'&/s",
    "https://a_b.com",
    "https://-a.com",
    "https://x.com/a b",
    "https://x.com/s\u00a0x",
    "http://10.0.0.1",
  ]) {
    assert.throws(() => parseBaseUrl(bad), Error, `${bad} should be refused`);
  }
});

test("only public unicast addresses count as public", () => {
  for (const ip of ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946"]) {
    assert.equal(isPublicAddress(ip), true, ip);
  }
  for (const ip of [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "198.18.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "ff02::1",
    "2001:db8::1",
    "64:ff9b::a00:1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
  ]) {
    assert.equal(isPublicAddress(ip), false, ip);
  }
});

test("the manifest must declare the base host", () => {
  const base = parseBaseUrl("https://api.shipstation.com");
  assert.equal(manifestAllowsBase(["{base-url}"], base), true);
  assert.equal(manifestAllowsBase(["API.shipstation.com"], base), true);
  assert.equal(manifestAllowsBase(["evil.example"], base), false);
  assert.match(refusal({ base, allowsBase: true }, "https", "evil.example", 443), /is not the integration's base URL/);
  assert.equal(refusal({ base, allowsBase: true }, "https", "API.ShipStation.com", 443), null);
});

test("guest text is defused like error::guest_text", () => {
  assert.equal(guestText("a\u001b[2Jb\nc", 100), "a\\u{1b}[2Jb\\u{a}c");
  assert.equal(guestText("héllo wörld", 4), "hél…");
  assert.equal(guestText("plain", 100), "plain");
});
