"""{{name}}: a smart action, written in Python and built with componentize-py.

`getItem` (machine name `get-item`) takes `{"id": "42"}`, GETs
`{base_url}/items/42` and answers `{"id": "42", "item": <the API's JSON>}`.

- The base URL is the operator's `base_url` setting (`wasi:config/store`);
  this action has no default of its own, so it never sends anything anywhere
  the operator did not name.
- The API key never passes through here: the host adds it, in the header the
  manifest asks for (`X-Api-Key`), to requests bound for the base URL's host.
- Every failure is one of the contract's typed errors (`fail(...)`); the one
  place an upstream status becomes an error is `check_status`.
- Every wait is bounded by the call's budget (`http_client.Deadline`).

componentize-py snapshots the interpreter after importing this module at build
time and the sandbox has no filesystem, so everything is imported at the top.
"""

import json
from typing import Any, Callable, NoReturn, Optional
from urllib.parse import quote

import http_client
import wit_world.exports
from componentize_py_types import Err
from wit_world.exports.action import (
    ActionError,
    ActionError_Denied,
    ActionError_Internal,
    ActionError_InvalidInput,
    ActionError_NotFound,
    ActionError_RateLimited,
    ActionError_Timeout,
    ActionError_Unauthorized,
    ActionError_Upstream,
    CallContext,
    CredentialSpec,
    DefaultAction,
    Execution,
    JsonType,
    Manifest,
    MethodSpec,
    ParamSpec,
    RateLimit,
    Trigger,
    UpstreamFailure,
)
from wit_world.imports import log, store

# Milliseconds of the budget kept back to return an error after a timeout.
BUDGET_RESERVE_MS = 300
# Largest response body read; a bigger one is an upstream error.
MAX_BODY_BYTES = 1024 * 1024
MAX_ID_CHARS = 64

GET_ITEM = MethodSpec(
    name="get-item",
    display_name="getItem",
    description="Get one item from the {{name}} API by its id.",
    params=[
        ParamSpec(
            name="id",
            json_type=JsonType.STRING,
            description='The item\'s id, e.g. "42"',
            required=True,
            example='"42"',
        )
    ],
)


class Action(wit_world.exports.Action):
    """The exported `actionbox:action/action` interface."""

    def describe(self) -> Manifest:
        return Manifest(
            integration="{{name}}",
            version="0.1.0",
            methods=[GET_ITEM],
            default_actions=[
                DefaultAction(
                    name="getItem",
                    method=GET_ITEM.display_name,
                    description=None,
                    execution=Execution.DURING_INTERACTION,
                    trigger=Trigger.INBOUND,
                    parameter_descriptions=[],
                    response_instructions="Answer with the item's details in one or two sentences; never invent any.",
                )
            ],
            # Only the host of the operator's base URL.
            outbound_hosts=["{base-url}"],
            default_base_url="",
            credential=CredentialSpec(name="{{name}} API key", header="X-Api-Key"),
        )

    def invoke(self, method: str, input: str, ctx: CallContext) -> str:
        if method not in (GET_ITEM.name, GET_ITEM.display_name):
            fail(ActionError_InvalidInput(f"unknown method `{method}`; this action offers getItem"))
        return guarded(lambda: get_item(ctx, input))

    def test_connection(self, ctx: CallContext) -> str:
        return guarded(lambda: test_connection(ctx))


def get_item(ctx: CallContext, input: str) -> str:
    """getItem: the item the input's `id` names."""
    item_id = parse_id(input)
    item = get_json(ctx, f"/items/{quote(item_id, safe='')}")
    return json.dumps({"id": item_id, "item": item})


def test_connection(ctx: CallContext) -> str:
    """The integration's Test button: one cheap authenticated request."""
    get_json(ctx, "/items?limit=1")
    return json.dumps({"ok": True, "message": "the API accepted the key (GET /items?limit=1 answered 2xx)"})


def guarded(work: Callable[[], str]) -> str:
    """`work()`, with any exception that is not already a typed error (a bug)
    reported as `internal` instead of crashing the component."""
    try:
        return work()
    except Err:
        raise
    except Exception as e:
        fail(ActionError_Internal(f"{type(e).__name__}: {e}"))


def fail(error: ActionError) -> NoReturn:
    """Return `error` to the host as the call's `action-error`."""
    raise Err(error)


def parse_id(text: str) -> str:
    """The `id` of the input object `{"id": "42"}`."""
    try:
        value = json.loads(text)
    except ValueError:
        fail(ActionError_InvalidInput('the input is not JSON; pass an object such as {"id": "42"}'))
    raw = value.get("id") if isinstance(value, dict) else None
    if not isinstance(raw, str) or not raw.strip():
        fail(ActionError_InvalidInput('id is missing or not a string; pass {"id": "42"}'))
    item_id = raw.strip()
    if len(item_id) > MAX_ID_CHARS or any(ord(c) < 0x20 or ord(c) == 0x7F for c in item_id):
        fail(ActionError_InvalidInput(f"id must be at most {MAX_ID_CHARS} printable characters"))
    return item_id


def base_url() -> str:
    """The operator's `base_url` setting: scheme, host and optional path prefix."""
    try:
        url = store.get("base_url")
    except Err as e:
        fail(ActionError_Internal(f"the host could not provide the base_url setting ({e.value})"))
    if not url or not url.startswith(("http://", "https://")):
        fail(ActionError_Internal(f"the base_url setting `{url}` is not an http(s) URL; set the integration's base URL"))
    return url.rstrip("/")


def get_json(ctx: CallContext, path: str) -> Any:
    """GET `path` under the base URL within the call's budget; the JSON it answered."""
    url = base_url() + path
    deadline = http_client.Deadline(ctx.budget_ms, BUDGET_RESERVE_MS)
    try:
        response = http_client.get(url, deadline, MAX_BODY_BYTES)
    except http_client.BudgetExhausted as e:
        fail(ActionError_Timeout(f"the API did not answer within the call's budget: {e}"))
    except http_client.TransportFailure as e:
        if e.denied:
            fail(ActionError_Denied(f"{e}; the integration's base URL must name the host this action reaches"))
        fail(ActionError_Upstream(UpstreamFailure(status=None, message=f"the API is unreachable: {e}", request_id=None)))
    log.write(log.Level.INFO, f"{ctx.invocation_id}: GET {path} -> {response.status} ({len(response.body)} bytes)")
    check_status(response)
    try:
        return json.loads(response.body)
    except ValueError:
        fail(ActionError_Upstream(UpstreamFailure(
            status=response.status, message="the API answered with a body that is not JSON", request_id=None
        )))


def check_status(response: http_client.Response) -> None:
    """The one place an upstream HTTP status becomes the contract's error."""
    status = response.status
    if 200 <= status < 300:
        return
    request_id = response.headers.get("x-request-id")
    if status in (401, 403):
        fail(ActionError_Unauthorized(f"the API refused the key with {status}; check the integration's {{name}} API key"))
    if status == 404:
        fail(ActionError_NotFound(f"the API has no such item ({status})"))
    if status == 429:
        fail(ActionError_RateLimited(RateLimit(
            retry_after_secs=retry_after_secs(response.headers.get("retry-after")),
            message="the API is throttling requests (429); try again later",
        )))
    fail(ActionError_Upstream(UpstreamFailure(status=status, message=f"the API answered {status}", request_id=request_id)))


def retry_after_secs(value: Optional[str]) -> Optional[int]:
    """`Retry-After` in seconds, when it is a plain number that fits a u32."""
    if value is None or not value.strip().isdigit():
        return None
    secs = int(value.strip())
    return secs if secs <= 0xFFFF_FFFF else None
