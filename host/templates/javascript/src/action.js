// {{name}}: a smart action, written in JavaScript and built with componentize-js.
//
// `getItem` (machine name `get-item`) takes {"id": "42"}, GETs
// `{base_url}/items/42` and answers {"id": "42", "item": <the API's JSON>}.
//
// - The base URL is the operator's `base_url` setting (`wasi:config/store`);
//   this action has no default of its own, so it never sends anything
//   anywhere the operator did not name.
// - The API key never passes through here: the host adds it, in the header
//   the manifest asks for (`X-Api-Key`), to requests bound for the base URL's host.
// - Every failure is one of the contract's typed errors: throw
//   `{ tag: 'not-found', val: '…' }` (a variant of `action-error`); the one
//   place an upstream status becomes an error is `checkStatus`.
// - `fetch` runs over `wasi:http`; every request is aborted when the call's
//   budget (`ctx.budgetMs`) is about to run out, so the action can still
//   answer `timeout` before the host stops it.

import { get as getSetting } from 'wasi:config/store@0.2.0-rc.1';
import { write as log } from 'actionbox:action/log@0.2.0';

// Milliseconds of the budget kept back to return an error after a timeout.
const BUDGET_RESERVE_MS = 300;
const MAX_ID_CHARS = 64;

const GET_ITEM = {
  name: 'get-item',
  displayName: 'getItem',
  description: 'Get one item from the {{name}} API by its id.',
  params: [
    { name: 'id', jsonType: 'string', description: 'The item\'s id, e.g. "42"', required: true, example: '"42"' },
  ],
};

// The exported `actionbox:action/action` interface.
export const action = {
  describe() {
    return {
      integration: '{{name}}',
      version: '0.1.0',
      methods: [GET_ITEM],
      defaultActions: [
        {
          name: 'getItem',
          method: GET_ITEM.displayName,
          execution: 'during-interaction',
          trigger: 'inbound',
          parameterDescriptions: [],
          responseInstructions: 'Answer with the item\'s details in one or two sentences; never invent any.',
        },
      ],
      // Only the host of the operator's base URL.
      outboundHosts: ['{base-url}'],
      defaultBaseUrl: '',
      credential: { name: '{{name}} API key', header: 'X-Api-Key' },
    };
  },

  async invoke(method, input, ctx) {
    if (method !== GET_ITEM.name && method !== GET_ITEM.displayName) {
      fail('invalid-input', `unknown method \`${method}\`; this action offers getItem`);
    }
    return guarded(async () => {
      const id = parseId(input);
      const item = await getJson(ctx, `/items/${encodeURIComponent(id)}`);
      return JSON.stringify({ id, item });
    });
  },

  async testConnection(ctx) {
    return guarded(async () => {
      await getJson(ctx, '/items?limit=1');
      return JSON.stringify({ ok: true, message: 'the API accepted the key (GET /items?limit=1 answered 2xx)' });
    });
  },
};

/** Throw the contract's `action-error` case `tag` with `val`. */
function fail(tag, val) {
  throw { tag, val };
}

/** `work()`, with any exception that is not already a typed error (a bug)
 * reported as `internal` instead of crashing the component. */
async function guarded(work) {
  try {
    return await work();
  } catch (e) {
    if (e && typeof e.tag === 'string') throw e;
    fail('internal', `${e && e.name}: ${e && e.message}`);
  }
}

/** The `id` of the input object {"id": "42"}. */
function parseId(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    fail('invalid-input', 'the input is not JSON; pass an object such as {"id": "42"}');
  }
  const raw = value && typeof value === 'object' ? value.id : undefined;
  if (typeof raw !== 'string' || raw.trim() === '') {
    fail('invalid-input', 'id is missing or not a string; pass {"id": "42"}');
  }
  const id = raw.trim();
  if (id.length > MAX_ID_CHARS || /[\u0000-\u001f\u007f]/.test(id)) {
    fail('invalid-input', `id must be at most ${MAX_ID_CHARS} printable characters`);
  }
  return id;
}

/** The operator's `base_url` setting: scheme, host and optional path prefix. */
function baseUrl() {
  let url;
  try {
    url = getSetting('base_url');
  } catch (e) {
    fail('internal', `the host could not provide the base_url setting (${JSON.stringify(e && e.payload)})`);
  }
  if (!url || !/^https?:\/\//.test(url)) {
    fail('internal', `the base_url setting \`${url}\` is not an http(s) URL; set the integration's base URL`);
  }
  return url.replace(/\/+$/, '');
}

/** GET `path` under the base URL within the call's budget; the JSON it answered. */
async function getJson(ctx, path) {
  const url = baseUrl() + path;
  const waitMs = Math.max(0, Number(ctx.budgetMs) - BUDGET_RESERVE_MS);
  let response, body;
  try {
    const signal = AbortSignal.timeout(waitMs);
    response = await fetch(url, { headers: { accept: 'application/json' }, signal });
    body = await response.text();
  } catch (e) {
    if (e && (e.name === 'TimeoutError' || e.name === 'AbortError')) {
      fail('timeout', `the API did not answer within the call's budget (${waitMs} ms)`);
    }
    // The sandbox refusing the request also ends here.
    fail('upstream', { message: `no HTTP answer from ${url} (${e && e.message}); check the base URL`, status: undefined, requestId: undefined });
  }
  log('info', `${ctx.invocationId}: GET ${path} -> ${response.status} (${body.length} chars)`);
  checkStatus(response);
  try {
    return JSON.parse(body);
  } catch {
    fail('upstream', { status: response.status, message: 'the API answered with a body that is not JSON', requestId: undefined });
  }
}

/** The one place an upstream HTTP status becomes the contract's error. */
function checkStatus(response) {
  const status = response.status;
  if (status >= 200 && status < 300) return;
  if (status === 401 || status === 403) {
    fail('unauthorized', `the API refused the key with ${status}; check the integration's {{name}} API key`);
  }
  if (status === 404) fail('not-found', `the API has no such item (${status})`);
  if (status === 429) {
    const after = (response.headers.get('retry-after') || '').trim();
    const secs = /^\d+$/.test(after) && Number(after) <= 0xffffffff ? Number(after) : undefined;
    fail('rate-limited', { retryAfterSecs: secs, message: 'the API is throttling requests (429); try again later' });
  }
  fail('upstream', { status, message: `the API answered ${status}`, requestId: response.headers.get('x-request-id') ?? undefined });
}
