"""One HTTP GET through `wasi:http/outgoing-handler`, bounded by the call's budget.

The host gives every call a budget (`ctx.budget_ms`). Every wait in here (for
the response head, for each piece of the body) polls the request together
with a `wasi:clocks` timer for the end of that budget, so a silent upstream
ends in `BudgetExhausted` while the action can still answer with `timeout`,
instead of the host stopping it.

Resources are closed child-first with `with`: the component model traps when
a parent is dropped while a child still lives.
"""

from dataclasses import dataclass
from typing import Dict, List

from componentize_py_types import Err
from wit_world.imports import monotonic_clock, outgoing_handler, poll, streams
from wit_world.imports import types as http

NANOS_PER_MS = 1_000_000
READ_CHUNK_BYTES = 64 * 1024


class Deadline:
    """The monotonic instant by which the action must have answered."""

    def __init__(self, budget_ms: int, reserve_ms: int):
        # The reserve is kept back to build and return the error after a timeout.
        self.instant_ns = monotonic_clock.now() + max(0, budget_ms - reserve_ms) * NANOS_PER_MS

    def remaining_ns(self) -> int:
        return max(0, self.instant_ns - monotonic_clock.now())


class BudgetExhausted(Exception):
    """The budget ran out while waiting on the upstream."""


class TransportFailure(Exception):
    """No HTTP answer: refused by the sandbox (`denied`), or a connection failure."""

    def __init__(self, message: str, denied: bool = False):
        super().__init__(message)
        self.denied = denied


@dataclass
class Response:
    status: int
    # Header names in lower case; a repeated header keeps its first value.
    headers: Dict[str, str]
    body: bytes


def get(url: str, deadline: Deadline, max_body_bytes: int) -> Response:
    """GET `url` (http or https) and read the whole body."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    remaining = deadline.remaining_ns()
    if remaining == 0:
        raise BudgetExhausted("the budget was used up before the request could be sent")

    request = http.OutgoingRequest(http.Fields.from_list([("accept", b"application/json")]))
    request.set_method(http.Method_Get())
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    # No phase may take longer than what is left of the budget (the host clamps these too).
    options = http.RequestOptions()
    options.set_connect_timeout(remaining)
    options.set_first_byte_timeout(remaining)
    options.set_between_bytes_timeout(remaining)

    try:
        future = outgoing_handler.handle(request, options)
    except Err as e:
        raise _failure(e.value) from None
    with future:
        _wait_for(future.subscribe(), deadline, "the response head")
        outcome = future.get()
    if outcome is None or isinstance(outcome, Err):
        raise TransportFailure("the response was not available after it was signalled ready")
    if isinstance(outcome.value, Err):
        raise _failure(outcome.value.value)
    with outcome.value.value as response:
        status = response.status()
        with response.headers() as fields:
            headers: Dict[str, str] = {}
            for name, value in fields.entries():
                headers.setdefault(name.lower(), value.decode("latin-1"))
        with response.consume() as body:
            with body.stream() as stream:
                data = _read_all(stream, deadline, max_body_bytes)
    return Response(status=status, headers=headers, body=data)


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


_TIMEOUTS = (
    http.ErrorCode_ConnectionTimeout,
    http.ErrorCode_ConnectionReadTimeout,
    http.ErrorCode_ConnectionWriteTimeout,
    http.ErrorCode_HttpResponseTimeout,
    http.ErrorCode_DnsTimeout,
)


def _failure(code: http.ErrorCode) -> Exception:
    """The exception for a `wasi:http` error code."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    if isinstance(code, (http.ErrorCode_HttpRequestDenied, http.ErrorCode_DestinationIpProhibited)):
        return TransportFailure(f"the sandbox refused the request ({name})", denied=True)
    if isinstance(code, _TIMEOUTS):
        return BudgetExhausted(f"the request timed out ({name})")
    return TransportFailure(f"no HTTP answer ({name})")
