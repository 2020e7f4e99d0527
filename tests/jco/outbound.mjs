// The action's only way out: `wasi:http/outgoing-handler` and the
// `wasi:http/types` it uses, built on @bytecodealliance/preview2-shim's Node
// implementation but wrapped so that, like the Rust host's outbound hook
// (host/src/outbound.rs):
//   - a request goes out only to the base URL's scheme, host and port, and only
//     when the action's manifest declares that host (or `{base-url}`);
//   - credential-like headers the action set itself (Authorization,
//     Proxy-Authorization, the manifest's credential header) are dropped;
//   - the API key is added in the manifest's credential header by this host,
//     at send time, so the action can never read it back;
//   - at most LIMITS.maxOutboundRequests requests are made per call;
//   - every network timeout is clamped to what is left of the call's deadline.
// A refused request fails inside the guest as `HTTP-request-denied` (a refused
// address as `destination-IP-prohibited`), as in the Rust host.
//
// How the key gets in: the shim locks an outgoing request's headers when the
// request is constructed and reads them (through `Fields#entries()`) only
// when the request is handed to `outgoing-handler.handle`. The action
// therefore gets a subclass of the shim's OutgoingRequest whose headers are a
// host-owned Fields subclass; for the duration of our own `handle` call, and
// only then, its `entries()` also yields the credential header.

import { outgoingHandler as shimHandler, types as shimTypes } from "@bytecodealliance/preview2-shim/http";
import { isCredentialHeader, LIMITS, refusal } from "./policy.mjs";

const { Fields, OutgoingRequest, RequestOptions } = shimTypes;
const encoder = new TextEncoder();

function schemeName(scheme) {
  if (scheme === undefined || scheme === null) return "https";
  switch (scheme.tag) {
    case "HTTP":
      return "http";
    case "HTTPS":
      return "https";
    default:
      return String(scheme.val).toLowerCase();
  }
}

function methodName(method) {
  return (method.tag === "other" ? method.val : method.tag).toUpperCase();
}

/** `host[:port]` → `{ host, port }` with the scheme's default port; null when malformed. */
function hostAndPort(authority, scheme) {
  const m = /^(\[[^\]]*\]|[^:]*)(?::([0-9]{1,5}))?$/.exec(authority);
  if (!m) return null;
  const port = m[2] === undefined ? (scheme === "https" ? 443 : 80) : Number(m[2]);
  if (port > 65535) return null;
  return { host: m[1], port };
}

/**
 * The `wasi:http/types` and `wasi:http/outgoing-handler` imports for one
 * call.
 *
 * @param {object} o
 * @param {import("./policy.mjs").BaseUrl | null} o.base the integration's base URL; null refuses every request (describe)
 * @param {boolean} o.allowsBase whether the manifest declares the base URL's host
 * @param {string | undefined} o.credentialHeader the manifest's credential header
 * @param {string | undefined} o.apiKey the key to inject; undefined sends none
 * @param {number} o.deadlineAt epoch ms by which the call must end
 * @param {string | null} o.addressRefusal why the base host may not be dialled (non-public address), if so
 * @param {(v: {kind: string, message: string}) => void} o.onViolation what the sandbox stopped
 * @param {(r: {method: string, url: string, credential: boolean, dropped: string[]}) => void} [o.onRequest]
 */
export function sandboxedHttp({
  base,
  allowsBase,
  credentialHeader,
  apiKey,
  deadlineAt,
  addressRefusal = null,
  onViolation,
  onRequest = () => {},
}) {
  const policy = { base, allowsBase: Boolean(base) && allowsBase };
  const credentialEntry =
    apiKey !== undefined && credentialHeader ? [credentialHeader, encoder.encode(apiKey)] : null;
  let requests = 0;

  /** Headers of a request the action built; host-owned, credential added only while sending. */
  class RequestHeaders extends Fields {
    #sending = null;
    #dropped = [];

    entries() {
      const own = super.entries();
      return this.#sending ? [...own, this.#sending] : own;
    }

    static copyFrom(fields) {
      const headers = new RequestHeaders();
      for (const [name, value] of fields.entries()) {
        if (isCredentialHeader(name, credentialHeader)) {
          headers.#dropped.push(name);
        } else {
          headers.append(name, value);
        }
      }
      return headers;
    }

    static dropped(headers) {
      return headers.#dropped;
    }

    static sendWith(headers, entry, send) {
      headers.#sending = entry;
      try {
        return send();
      } finally {
        headers.#sending = null;
      }
    }
  }

  class SandboxedOutgoingRequest extends OutgoingRequest {
    constructor(fields) {
      super(RequestHeaders.copyFrom(fields));
    }
  }

  /** Record what the sandbox stopped, and fail the guest's request with `code` (a `wasi:http` error-code). */
  function deny(kind, message, code = "HTTP-request-denied") {
    onViolation({ kind, message });
    // eslint-disable-next-line no-throw-literal
    throw { tag: code };
  }

  function handle(request, options) {
    requests += 1;
    if (requests > LIMITS.maxOutboundRequests) {
      deny(
        "limit-exceeded",
        `the action made more than ${LIMITS.maxOutboundRequests} outbound requests in one call (limits.max_outbound_requests)`,
      );
    }
    const headers = request instanceof SandboxedOutgoingRequest ? request.headers() : null;
    if (!(headers instanceof RequestHeaders)) {
      deny("denied", "outbound request refused: it was not built with this host's wasi:http/types");
    }
    const scheme = schemeName(request.scheme());
    const authority = request.authority();
    const target = authority === undefined ? null : hostAndPort(authority, scheme);
    if (!target) {
      // eslint-disable-next-line no-throw-literal
      throw { tag: "HTTP-request-URI-invalid" };
    }
    if (!policy.base) {
      deny("denied", "outbound request refused: the action's manifest does not declare the base URL host `invalid`; it may reach nothing");
    }
    const why = refusal(policy, scheme, target.host, target.port);
    if (why) deny("denied", `outbound request refused: ${why}`);
    if (addressRefusal) deny("denied", `outbound request refused: ${addressRefusal}`, "destination-IP-prohibited");

    const leftMs = deadlineAt - Date.now();
    if (leftMs <= 0) {
      // eslint-disable-next-line no-throw-literal
      throw { tag: "connection-timeout" };
    }
    // The shim turns 0 into "no timeout"; never hand it less than 1 ms.
    const left = BigInt(Math.max(1, Math.floor(leftMs))) * 1_000_000n;
    const opts = options ?? new RequestOptions();
    for (const [get, set] of [
      ["connectTimeout", "setConnectTimeout"],
      ["firstByteTimeout", "setFirstByteTimeout"],
      ["betweenBytesTimeout", "setBetweenBytesTimeout"],
    ]) {
      const asked = opts[get]();
      opts[set](asked === undefined || asked > left ? left : asked);
    }

    onRequest({
      method: methodName(request.method()),
      url: `${scheme}://${authority}${request.pathWithQuery() ?? ""}`,
      credential: credentialEntry !== null,
      dropped: RequestHeaders.dropped(headers),
    });
    if (!credentialEntry) return shimHandler.handle(request, opts);
    return RequestHeaders.sendWith(headers, credentialEntry, () => shimHandler.handle(request, opts));
  }

  return {
    types: { ...shimTypes, OutgoingRequest: SandboxedOutgoingRequest },
    outgoingHandler: { handle },
  };
}
