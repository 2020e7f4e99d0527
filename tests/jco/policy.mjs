// The JS host's copy of the rules the Rust host (host/src/integration.rs,
// host/src/outbound.rs, host/src/error.rs, host/src/limits.rs) applies to an
// action: which base URLs are acceptable, which origin requests may go to,
// which addresses count as public, and how untrusted text is made printable.
// Pure functions only, so test/policy.test.mjs can check them directly.

import { isIP } from "node:net";

/** Sandbox limits, with the Rust host's defaults (SandboxLimits::default). */
export const LIMITS = Object.freeze({
  maxOutboundRequests: 16,
  maxResultBytes: 1024 * 1024,
  maxLogBytes: 64 * 1024,
  maxGuestMessageBytes: 4 * 1024,
  guestLogLineBytes: 4 * 1024,
});

/** Integration timeout bounds and default, in seconds (host/src/deadline.rs). */
export const MIN_TIMEOUT_SECS = 10;
export const MAX_TIMEOUT_SECS = 180;
export const DEFAULT_TIMEOUT_SECS = 10;
/** Time the host keeps for itself; the action is told its budget minus this. */
export const GUEST_BUDGET_RESERVE_MS = 100;
/** Time `describe` may take. */
export const DESCRIBE_TIMEOUT_MS = 10_000;

/** CLI exit code of each error kind (README "exit code" table). */
export const EXIT_CODES = Object.freeze({
  host: 1,
  "invalid-input": 10,
  unauthorized: 11,
  "not-found": 12,
  "rate-limited": 13,
  upstream: 14,
  timeout: 15,
  denied: 16,
  internal: 17,
  "memory-limit": 18,
  trap: 19,
  "invalid-output": 20,
  "limit-exceeded": 21,
});

/** Headers the action may never set itself, besides the manifest's credential header. */
const ALWAYS_CREDENTIAL_HEADERS = ["authorization", "proxy-authorization"];

/** A checked base URL: `{ scheme, host, port, pathPrefix }` plus `toString()`. */
export class BaseUrl {
  constructor(scheme, host, port, pathPrefix) {
    this.scheme = scheme;
    this.host = host;
    this.port = port;
    this.pathPrefix = pathPrefix;
    Object.freeze(this);
  }

  /** `scheme://host[:port]prefix`, the default port left out, IPv6 in brackets. */
  toString() {
    const host = this.host.includes(":") ? `[${this.host}]` : this.host;
    const port = this.port === defaultPort(this.scheme) ? "" : `:${this.port}`;
    return `${this.scheme}://${host}${port}${this.pathPrefix}`;
  }

  /** `localhost` or a loopback IP literal. */
  isLoopback() {
    return this.host === "localhost" || (isIP(this.host) !== 0 && isLoopbackAddress(this.host));
  }

  /** Whether the operator pointed the base URL itself at a non-public address. */
  targetsPrivateNetwork() {
    return this.host === "localhost" || (isIP(this.host) !== 0 && !isPublicAddress(this.host));
  }
}

function defaultPort(scheme) {
  return scheme === "https" ? 443 : 80;
}

/**
 * Parse and check a base URL like the Rust host's `BaseUrl::parse`: http(s)
 * only, no user information, no query, a valid host, plain http only to a
 * loopback host. Throws an Error saying what is wrong.
 */
export function parseBaseUrl(input) {
  const text = String(input).trim();
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(text);
  if (!m) {
    if (!text.includes("://")) {
      throw new Error(`base URL \`${text}\` has no scheme; write it as https://host`);
    }
    throw new Error(`base URL \`${text}\` is not a valid URL; expected e.g. https://api.shipstation.com`);
  }
  const [, rawScheme, authority, path, query, fragment] = m;
  const scheme = rawScheme.toLowerCase();
  if (scheme !== "http" && scheme !== "https") {
    throw new Error(`base URL \`${text}\` uses scheme \`${rawScheme}\`; only https (or http to a loopback host) is allowed`);
  }
  if (authority === "") {
    throw new Error(`base URL \`${text}\` has no host`);
  }
  if (authority.includes("@")) {
    throw new Error(
      `base URL \`${text}\` contains user information; put credentials in the API key setting, not the URL`,
    );
  }
  if (query !== undefined) {
    throw new Error(`base URL \`${text}\` must not have a query string`);
  }
  if (fragment !== undefined) {
    throw new Error(`base URL \`${text}\` is not a valid URL; expected e.g. https://api.shipstation.com`);
  }
  const split = splitAuthority(authority, scheme);
  if (!split) {
    throw new Error(`base URL \`${text}\` is not a valid URL; expected e.g. https://api.shipstation.com`);
  }
  const host = split.host.toLowerCase();
  if (!isValidHost(host)) {
    throw new Error(`base URL \`${text}\` has an invalid host \`${host}\`; expected a DNS name or an IP address`);
  }
  if (!/^[A-Za-z0-9\-._~/%]*$/.test(path)) {
    throw new Error(`base URL \`${text}\` has characters in its path that must be percent-encoded`);
  }
  const base = new BaseUrl(scheme, host, split.port, path.replace(/\/+$/, ""));
  if (base.scheme === "http" && !base.isLoopback()) {
    throw new Error(
      `base URL \`${text}\` uses plain http to a non-loopback host, which would send the API key unencrypted; use https`,
    );
  }
  return base;
}

/**
 * `host[:port]` or `[v6][:port]` → `{ host, port }` (brackets removed, port
 * defaulted from the scheme), or `null` when it is malformed.
 */
export function splitAuthority(authority, scheme) {
  let host;
  let portText;
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0) return null;
    host = authority.slice(1, end);
    const rest = authority.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) return null;
    portText = rest === "" ? undefined : rest.slice(1);
  } else {
    const colon = authority.lastIndexOf(":");
    if (colon >= 0 && authority.indexOf(":") !== colon) return null;
    host = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
  }
  let port = defaultPort(scheme);
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) return null;
    port = Number(portText);
  }
  return { host, port };
}

/** An IP literal, or a DNS name of 1–63 byte labels of letters, digits and inner hyphens. */
export function isValidHost(host) {
  if (isIP(host) !== 0) return true;
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  return (
    name.length > 0 &&
    name.length <= 253 &&
    name.split(".").every((label) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label))
  );
}

function ipv4Octets(text) {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^[0-9]{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.map(Number);
}

/** The eight 16-bit segments of an IPv6 literal (embedded IPv4 tail allowed), or null. */
export function ipv6Segments(text) {
  const addr = text.split("%")[0];
  const halves = addr.split("::");
  if (halves.length > 2) return null;
  const parse = (part) => {
    if (part === "") return [];
    const out = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i += 1) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const o = ipv4Octets(piece);
        if (!o) return null;
        out.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (!head || !tail) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const fill = 8 - head.length - tail.length;
  if (fill < 1) return null;
  return [...head, ...new Array(fill).fill(0), ...tail];
}

function isLoopbackAddress(ip) {
  const v4 = ipv4Octets(ip);
  if (v4) return v4[0] === 127;
  // Like Rust's `Ipv6Addr::is_loopback`: `::1` only (not IPv4-mapped 127/8).
  const s = ipv6Segments(ip);
  return s !== null && s.slice(0, 7).every((x) => x === 0) && s[7] === 1;
}

/**
 * Whether `ip` is a public unicast address: not loopback, private,
 * link-local, CGNAT, unspecified, broadcast, multicast, documentation or
 * another special range (the Rust host's `is_public_address`).
 */
export function isPublicAddress(ip) {
  const o = ipv4Octets(ip);
  if (o) {
    return !(
      o[0] === 127 || // loopback
      o[0] === 10 || // private
      (o[0] === 172 && (o[1] & 0xf0) === 16) ||
      (o[0] === 192 && o[1] === 168) ||
      (o[0] === 169 && o[1] === 254) || // link-local
      o.every((x) => x === 0) || // unspecified
      o.every((x) => x === 255) || // broadcast
      (o[0] >= 224 && o[0] <= 239) || // multicast
      (o[0] === 192 && o[1] === 0 && o[2] === 2) || // documentation
      (o[0] === 198 && o[1] === 51 && o[2] === 100) ||
      (o[0] === 203 && o[1] === 0 && o[2] === 113) ||
      o[0] === 0 ||
      (o[0] === 100 && (o[1] & 0xc0) === 64) || // 100.64.0.0/10 CGNAT
      (o[0] === 192 && o[1] === 0 && o[2] === 0) || // 192.0.0.0/24 IETF
      (o[0] === 198 && (o[1] & 0xfe) === 18) || // 198.18.0.0/15 benchmarking
      o[0] >= 240 // reserved
    );
  }
  const s = ipv6Segments(ip);
  if (!s) return false;
  if (s.slice(0, 5).every((x) => x === 0) && s[5] === 0xffff) {
    return isPublicAddress(`${s[6] >> 8}.${s[6] & 0xff}.${s[7] >> 8}.${s[7] & 0xff}`);
  }
  const zeroUpTo7 = s.slice(0, 7).every((x) => x === 0);
  return !(
    (zeroUpTo7 && s[7] === 1) || // loopback
    (zeroUpTo7 && s[7] === 0) || // unspecified
    (s[0] & 0xff00) === 0xff00 || // multicast
    (s[0] & 0xfe00) === 0xfc00 || // fc00::/7 unique local
    (s[0] & 0xffc0) === 0xfe80 || // fe80::/10 link-local
    (s[0] === 0x2001 && s[1] === 0x0db8) || // documentation
    (s[0] === 0x64 && s[1] === 0xff9b) // NAT64 can reach private v4
  );
}

/**
 * Whether the action's manifest lets it reach the base URL's host: it must
 * declare that host, or `{base-url}`.
 */
export function manifestAllowsBase(outboundHosts, base) {
  return outboundHosts.some((h) => h === "{base-url}" || h.toLowerCase() === base.host);
}

/**
 * Why a request to `scheme://host:port` is refused, or null when it may go:
 * only the base URL's own scheme, host and port are reachable.
 */
export function refusal({ base, allowsBase }, scheme, host, port) {
  if (!allowsBase) {
    return `the action's manifest does not declare the base URL host \`${base.host}\`; it may reach nothing`;
  }
  const bare = host.replace(/^\[/, "").replace(/\]$/, "");
  if (scheme !== base.scheme || bare.toLowerCase() !== base.host || port !== base.port) {
    return (
      `${scheme}://${bare}:${port} is not the integration's base URL (${base}); ` +
      `to allow it, set the integration's base_url to ${scheme}://${bare}:${port}`
    );
  }
  return null;
}

/** Whether the action must not set header `name` itself (credential-like headers). */
export function isCredentialHeader(name, credentialHeader) {
  const lower = String(name).toLowerCase();
  return (
    ALWAYS_CREDENTIAL_HEADERS.includes(lower) ||
    (credentialHeader !== undefined && credentialHeader !== null && lower === credentialHeader.toLowerCase())
  );
}

/**
 * Check an API key like the Rust host's `ApiKey::new`: surrounding
 * whitespace dropped, not empty, visible ASCII and spaces only.
 */
export function checkApiKey(raw) {
  const key = String(raw).trim();
  if (key === "") throw new Error("the API key is empty");
  for (let i = 0; i < key.length; i += 1) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f) {
      throw new Error(
        "the API key contains characters that cannot be sent in an HTTP header (control or non-ASCII)",
      );
    }
  }
  return key;
}

/**
 * Make text that came from an untrusted action safe to print, exactly like
 * the Rust host's `error::guest_text`: control characters become `\u{..}`
 * escapes and the text is cut to `max` UTF-8 bytes (then `…`).
 */
export function guestText(text, max) {
  let out = "";
  let bytes = 0;
  for (const c of String(text)) {
    if (bytes >= max) {
      out += "…";
      break;
    }
    const piece = /^\p{Cc}$/u.test(c) ? `\\u{${c.codePointAt(0).toString(16)}}` : c;
    out += piece;
    bytes += Buffer.byteLength(piece, "utf8");
  }
  return out;
}
