"""One HTTP GET through `wasi:http/outgoing-handler`, bounded by the call's budget.

The host gives the action a budget (`call-context.budget-ms`); every wait in
here — for the response head and for each piece of the body — polls the
request's pollable together with a `wasi:clocks` timer for the end of that
budget, so a silent upstream ends in `BudgetExhausted` while the action can
still answer, instead of the host stopping it.

Resources are released child-first (stream, body, response, future) with
`with` blocks: the component model traps when a parent is dropped while a
child still lives, and garbage collection order is not something to rely on.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional

from componentize_py_types import Err
from wit_world.imports import monotonic_clock, outgoing_handler, poll, streams
from wit_world.imports import types as http

NANOS_PER_MS = 1_000_000
# Bytes asked for per read; the host hands over what it has, up to this.
READ_CHUNK_BYTES = 64 * 1024


class Deadline:
    """The monotonic instant by which the action must have answered."""

    def __init__(self, budget_ms: int, reserve_ms: int):
        # The reserve is kept back to build and return the error after a
        # timeout, before the host's own timer fires.
        usable_ms = max(0, budget_ms - reserve_ms)
        self.instant_ns = monotonic_clock.now() + usable_ms * NANOS_PER_MS

    def remaining_ns(self) -> int:
        return max(0, self.instant_ns - monotonic_clock.now())


class BudgetExhausted(Exception):
    """The budget ran out while waiting on the upstream."""


class TransportFailure(Exception):
    """The request got no HTTP answer: refused by the sandbox, connection
    failure, protocol error, or a body past `max_body_bytes`."""

    def __init__(self, message: str, denied: bool = False):
        super().__init__(message)
        self.denied = denied


@dataclass
class HttpResponse:
    status: int
    # Header names in lower case; repeated fields keep their first value.
    headers: Dict[str, str]
    body: bytes


def get(
    scheme: str,
    authority: str,
    path_with_query: str,
    deadline: Deadline,
    max_body_bytes: int,
) -> HttpResponse:
    """GET `scheme://authority/path_with_query` and read the whole body."""
    remaining = deadline.remaining_ns()
    if remaining == 0:
        raise BudgetExhausted("the budget was used up before the request could be sent")

    headers = http.Fields.from_list([("accept", b"application/json")])
    request = http.OutgoingRequest(headers)
    request.set_method(http.Method_Get())
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(path_with_query)

    # Transport timeouts as a second line of defence; the host clamps them to
    # the call's deadline as well.
    options = http.RequestOptions()
    options.set_connect_timeout(remaining)
    options.set_first_byte_timeout(remaining)
    options.set_between_bytes_timeout(remaining)

    try:
        future = outgoing_handler.handle(request, options)
    except Err as e:
        raise _transport_failure(e.value) from None

    with future:
        _wait_for(future.subscribe(), deadline, "the response head")
        outcome = future.get()
    # `get` is only called once `subscribe` said ready, so it is never None;
    # the outer Err means "already taken", impossible on the first call.
    if outcome is None or isinstance(outcome, Err):
        raise TransportFailure("the HTTP response was not available after it was signalled ready")
    inner = outcome.value
    if isinstance(inner, Err):
        raise _transport_failure(inner.value)

    with inner.value as response:
        status = response.status()
        with response.headers() as fields:
            found: Dict[str, str] = {}
            for name, value in fields.entries():
                found.setdefault(name.lower(), value.decode("latin-1"))
        with response.consume() as body:
            with body.stream() as stream:
                data = _read_all(stream, deadline, max_body_bytes)
    return HttpResponse(status=status, headers=found, body=data)


def _wait_for(pollable: poll.Pollable, deadline: Deadline, what: str) -> None:
    """Block until `pollable` is ready or the deadline passes."""
    with pollable:
        if pollable.ready():
            return
        with monotonic_clock.subscribe_instant(deadline.instant_ns) as timer:
            ready: List[int] = poll.poll([pollable, timer])
    if 0 not in ready:
        raise BudgetExhausted(f"the budget ran out while waiting for {what}")


def _read_all(stream: streams.InputStream, deadline: Deadline, max_body_bytes: int) -> bytes:
    chunks: List[bytes] = []
    size = 0
    while True:
        try:
            chunk = stream.read(READ_CHUNK_BYTES)
        except Err as e:
            if isinstance(e.value, streams.StreamError_Closed):
                return b"".join(chunks)
            raise TransportFailure("the response body was cut off before its end") from None
        if chunk:
            size += len(chunk)
            if size > max_body_bytes:
                raise TransportFailure(f"the response body is larger than {max_body_bytes} bytes")
            chunks.append(chunk)
        else:
            _wait_for(stream.subscribe(), deadline, "the response body")


_TIMEOUT_CODES = (
    http.ErrorCode_ConnectionTimeout,
    http.ErrorCode_ConnectionReadTimeout,
    http.ErrorCode_ConnectionWriteTimeout,
    http.ErrorCode_HttpResponseTimeout,
    http.ErrorCode_DnsTimeout,
)


def _transport_failure(code: http.ErrorCode) -> Exception:
    """The exception for a `wasi:http` error code."""
    if isinstance(code, http.ErrorCode_HttpRequestDenied):
        return TransportFailure("the sandbox refused the request", denied=True)
    if isinstance(code, http.ErrorCode_DestinationIpProhibited):
        return TransportFailure("the sandbox refused the request's destination address", denied=True)
    if isinstance(code, _TIMEOUT_CODES):
        return BudgetExhausted(f"the request timed out ({type(code).__name__.removeprefix('ErrorCode_')})")
    detail: Optional[str] = None
    if isinstance(code, http.ErrorCode_InternalError) and code.value:
        detail = code.value
    name = type(code).__name__.removeprefix("ErrorCode_")
    return TransportFailure(f"no HTTP answer: {name}" + (f" ({detail})" if detail else ""))

