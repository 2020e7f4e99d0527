"""orderStatus: a ShipStation order's shipment status by order number, written
in Python and built with componentize-py against the same `smart-action` world
(`wit/world.wit`) as the Rust trackOrder action.

Flow: `GET {base-url}/v2/shipments?shipment_number=…&page_size=100`, following
`links.next.href` for at most 5 pages, keeping exact `shipment_number` matches
(ShipStation — and the simulator — also return numbers that merely start with
it). Next links are absolute URLs on ShipStation's own host; followed as given,
they leave the allowed origin when the integration points somewhere else, and
the host refuses them (reported as `denied`).

The component exports `actionbox:action/action@0.2.0` (class `Action`):
`describe`, `invoke` for orderStatus, and `test_connection` for the
integration's Test button. Its manifest offers orderStatus as a default action.

Everything a module needs is imported at the top: componentize-py snapshots the
interpreter after loading this module at build time, and the sandbox has no
filesystem to import from later.
"""

import json
import re
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple
from urllib.parse import quote, urlsplit

import budgeted_http
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

INTEGRATION = "shipstation-py"
VERSION = "0.2.0"
DEFAULT_BASE_URL = "https://api.shipstation.com"
PAGE_SIZE = 100
# Pages read before giving up on an order number shared by many others.
MAX_PAGES = 5
# Shipments listed in the result, newest first.
MAX_LISTED_SHIPMENTS = 10
MAX_BODY_BYTES = 4 * 1024 * 1024
# Milliseconds of the budget kept to build and return an error after a timeout.
BUDGET_RESERVE_MS = 300
MAX_ORDER_NUMBER_CHARS = 50
# Deepest JSON nesting parsed. ShipStation's bodies nest about 4 deep.
MAX_JSON_DEPTH = 32
# Shipment fields copied into the result; each is present, `null` when unknown.
SHIPMENT_FIELDS = ("shipment_id", "shipment_status", "ship_date", "created_at", "carrier_id", "service_code")

ORDER_STATUS = MethodSpec(
    name="order-status",
    display_name="orderStatus",
    description=(
        "Look up a ShipStation order by the order number the store shows (e.g. 1001 or #1001) "
        "and return the status of its shipments, newest first."
    ),
    params=[
        ParamSpec(
            name="order_number",
            json_type=JsonType.STRING,
            description="Order number as the merchant's store shows it, e.g. \"1001\"",
            required=True,
            example='"1001"',
        )
    ],
)

# What the assistant is told to do with an orderStatus result.
ORDER_STATUS_INSTRUCTIONS = (
    "Tell the customer the order's shipment status in one or two sentences (status). If the order has "
    "several shipments, give each one's shipment_status and ship_date. If ship_date is null, say the order "
    "has not shipped yet. Never invent dates or numbers."
)

# Offered to every integration of this kind unless the operator turns default
# actions off or defines an action of the same name.
ORDER_STATUS_DEFAULT = DefaultAction(
    name="orderStatus",
    method=ORDER_STATUS.display_name,
    description=None,
    execution=Execution.DURING_INTERACTION,
    trigger=Trigger.INBOUND,
    parameter_descriptions=[],
    response_instructions=ORDER_STATUS_INSTRUCTIONS,
)


class Action(wit_world.exports.Action):
    """The exported `actionbox:action/action` interface."""

    def describe(self) -> Manifest:
        return Manifest(
            integration=INTEGRATION,
            version=VERSION,
            methods=[ORDER_STATUS],
            default_actions=[ORDER_STATUS_DEFAULT],
            outbound_hosts=["api.shipstation.com", "{base-url}"],
            default_base_url=DEFAULT_BASE_URL,
            credential=CredentialSpec(name="ShipStation API V2 key", header="API-Key"),
        )

    def invoke(self, method: str, input: str, ctx: CallContext) -> str:
        if method not in (ORDER_STATUS.name, ORDER_STATUS.display_name):
            fail(ActionError_InvalidInput(f"unknown method `{method}`; this action offers orderStatus"))
        return call(ctx, lambda api: order_status(api, parse_order_number(input)))

    def test_connection(self, ctx: CallContext) -> str:
        return call(ctx, test_connection)


def call(ctx: CallContext, work: Callable[["ShipStation"], Dict[str, Any]]) -> str:
    """Run `work` against ShipStation within `ctx`'s budget; its result as JSON
    text, or every failure as the contract's `action-error`."""
    try:
        return json.dumps(work(ShipStation(ctx)))
    except Err:
        raise
    except budgeted_http.BudgetExhausted as e:
        fail(ActionError_Timeout(f"ShipStation did not answer within the call's budget: {e}"))
    except budgeted_http.TransportFailure as e:
        if e.denied:
            fail(ActionError_Denied(f"{e}; the integration's base URL must name the host the action reaches"))
        fail(ActionError_Upstream(UpstreamFailure(
            status=None, message=f"ShipStation is unreachable: {e}", request_id=None
        )))
    except Exception as e:  # a bug here must still come back as a typed error
        fail(ActionError_Internal(f"{type(e).__name__}: {e}"))


def fail(error: ActionError) -> NoReturn:
    """Return `error` to the host as the call's `action-error`."""
    raise Err(error)


def parse_order_number(text: str) -> str:
    """The order number from `{"order_number": "…"}`, without a leading `#`."""
    try:
        value = parse_json(text.encode())
    except ValueError:
        fail(ActionError_InvalidInput('the input is not JSON; pass an object such as {"order_number": "1001"}'))
    if not isinstance(value, dict):
        fail(ActionError_InvalidInput('the input must be a JSON object such as {"order_number": "1001"}'))
    raw = value.get("order_number")
    if raw is None:
        fail(ActionError_InvalidInput('order_number is missing; pass it as {"order_number": "1001"}'))
    if not isinstance(raw, str):
        fail(ActionError_InvalidInput(f'order_number must be a string such as "1001", not {json.dumps(raw)}'))
    number = raw.strip().removeprefix("#").strip()
    if not number:
        fail(ActionError_InvalidInput('order_number is empty; pass the order number the store shows, e.g. "1001"'))
    if len(number) > MAX_ORDER_NUMBER_CHARS or any(ord(c) < 0x20 or ord(c) == 0x7F for c in number):
        fail(ActionError_InvalidInput(
            f"order_number must be at most {MAX_ORDER_NUMBER_CHARS} printable characters"
        ))
    return number


class ShipStation:
    """ShipStation API V2 at the integration's base URL, within one call's budget."""

    def __init__(self, ctx: CallContext):
        try:
            base = store.get("base_url") or DEFAULT_BASE_URL
        except Err as e:
            fail(ActionError_Internal(
                f"the host could not provide the base_url setting (wasi:config/store: {e.value})"
            ))
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            fail(ActionError_Internal(f"the host's base_url setting `{base}` is not an http(s) URL"))
        self.scheme = parts.scheme
        self.authority = parts.netloc
        self.path_prefix = parts.path.rstrip("/")
        self.deadline = budgeted_http.Deadline(ctx.budget_ms, BUDGET_RESERVE_MS)
        self.invocation_id = ctx.invocation_id

    def get_json(self, path_with_query: str) -> Dict[str, Any]:
        """GET a path under the base URL; the JSON object it answered with."""
        return self.get_url_json(self.scheme, self.authority, self.path_prefix + path_with_query)

    def get_url_json(self, scheme: str, authority: str, path_with_query: str) -> Dict[str, Any]:
        """GET `scheme://authority/path_with_query` (any host: the sandbox decides)."""
        log.write(log.Level.DEBUG, f"{self.invocation_id}: GET {scheme}://{authority}{path_with_query}")
        response = budgeted_http.get(scheme, authority, path_with_query, self.deadline, MAX_BODY_BYTES)
        log.write(
            log.Level.INFO,
            f"{self.invocation_id}: GET {path_with_query} -> {response.status} ({len(response.body)} bytes)",
        )
        check_status(response)
        try:
            body = parse_json(response.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            fail(ActionError_Upstream(UpstreamFailure(
                status=response.status,
                message=f"ShipStation answered {response.status} with a body that is not a JSON object",
                request_id=None,
            )))
        return body


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_INNERMOST = re.compile(rb"\[[^][{}]*\]|\{[^][{}]*\}")


def parse_json(data: bytes) -> Any:
    """`json.loads`, refusing nesting deeper than MAX_JSON_DEPTH with ValueError.

    CPython's recursion guard watches the C stack in linear memory, not the
    host's 1 MiB wasm stack: a body of 100,000 `[` overflows the latter and
    the host stops the action with a trap before Python raises anything. So
    the depth is measured first, with C-speed regexes: strings blanked, then
    one innermost-bracket pass per level.
    """
    skeleton = _JSON_STRING.sub(b'""', data)
    for _ in range(MAX_JSON_DEPTH):
        if b"[" not in skeleton and b"{" not in skeleton:
            break
        reduced = _JSON_INNERMOST.sub(b"0", skeleton)
        if reduced == skeleton:
            raise ValueError("unbalanced brackets")
        skeleton = reduced
    else:
        if b"[" in skeleton or b"{" in skeleton:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(data)


def check_status(response: budgeted_http.HttpResponse) -> None:
    """The one place an upstream HTTP status becomes the contract's error."""
    status = response.status
    if 200 <= status < 300:
        return
    message, request_id = error_details(response.body)
    said = f" ({message})" if message else ""
    if status in (401, 403):
        fail(ActionError_Unauthorized(
            f"ShipStation rejected the API key with {status}{said}; "
            "check the integration's ShipStation API V2 key"
        ))
    if status == 404:
        fail(ActionError_NotFound(f"ShipStation answered 404{said}"))
    if status == 429:
        fail(ActionError_RateLimited(RateLimit(
            retry_after_secs=retry_after_secs(response.headers.get("retry-after")),
            message=f"ShipStation is throttling requests (429){said}; try again later",
        )))
    fail(ActionError_Upstream(UpstreamFailure(
        status=status,
        message=f"ShipStation answered {status}{said}",
        request_id=request_id,
    )))


def error_details(body: bytes) -> Tuple[Optional[str], Optional[str]]:
    """`errors[0].message` and `request_id` of a V2 error body, when it is one."""
    try:
        value = parse_json(body)
    except ValueError:
        return None, None
    if not isinstance(value, dict):
        return None, None
    request_id = value.get("request_id") if isinstance(value.get("request_id"), str) else None
    errors = value.get("errors")
    message = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        m = errors[0].get("message")
        message = m[:300] if isinstance(m, str) else None
    return message, request_id


def retry_after_secs(value: Optional[str]) -> Optional[int]:
    """`Retry-After` in seconds, when it is a plain number that fits a u32."""
    if value is None or not value.strip().isdigit():
        return None
    secs = int(value.strip())
    return secs if secs <= 0xFFFF_FFFF else None


def order_status(api: ShipStation, number: str) -> Dict[str, Any]:
    shipments = find_shipments(api, number)
    if not shipments:
        fail(ActionError_NotFound(f"ShipStation has no shipment for order number {number}; check the number"))
    shipments.sort(key=lambda s: text_field(s, "created_at") or "", reverse=True)
    listed = [{f: text_field(s, f) for f in SHIPMENT_FIELDS} for s in shipments[:MAX_LISTED_SHIPMENTS]]
    return {
        "order_number": number,
        "status": listed[0]["shipment_status"],
        "shipment_count": len(shipments),
        "shipments": listed,
    }


def find_shipments(api: ShipStation, number: str) -> List[Dict[str, Any]]:
    """Every shipment whose `shipment_number` is exactly `number`."""
    page = api.get_json(f"/v2/shipments?shipment_number={quote(number, safe='')}&page_size={PAGE_SIZE}")
    matches: List[Dict[str, Any]] = []
    for page_number in range(1, MAX_PAGES + 1):
        listed = page.get("shipments")
        if not isinstance(listed, list):
            fail(ActionError_Upstream(UpstreamFailure(
                status=200, message="ShipStation's shipment list has no `shipments` array", request_id=None
            )))
        matches.extend(s for s in listed if isinstance(s, dict) and s.get("shipment_number") == number)
        next_href = next_link(page)
        if next_href is None or page_number == MAX_PAGES:
            break
        link = urlsplit(next_href)
        path = link.path + (f"?{link.query}" if link.query else "")
        if link.netloc:
            page = api.get_url_json(link.scheme, link.netloc, path)
        else:  # a relative link stays on the base URL's origin
            page = api.get_url_json(api.scheme, api.authority, path)
    return matches


def next_link(page: Dict[str, Any]) -> Optional[str]:
    """`links.next.href`, or None on the last page (V2 sends `next: {}` there)."""
    links = page.get("links")
    nxt = links.get("next") if isinstance(links, dict) else None
    href = nxt.get("href") if isinstance(nxt, dict) else None
    return href if isinstance(href, str) and href else None


def text_field(obj: Dict[str, Any], name: str) -> Optional[str]:
    value = obj.get(name)
    return value if isinstance(value, str) else None


def test_connection(api: ShipStation) -> Dict[str, Any]:
    api.get_json("/v2/shipments?page=1&page_size=1")
    return {"ok": True, "message": "ShipStation accepted the API key (GET /v2/shipments answered 200)"}
