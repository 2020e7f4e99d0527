"""Remote MCP from the outside: the `mcp` package from PyPI (a client this
project did not write) talking Streamable HTTP to `actionbox serve`, plus the
JWT issuer the tests need (their own key pair and JWKS file).

Each subcommand prints ONE JSON object on standard output (the `ttl`
subcommand prints one per step, a line each) for the Rust test
(tests/e2e/tests/all/mcp_remote.rs) to check; nothing secret is printed but
the tokens the test asked for.

Subcommands:

  keys DIR
      Make the issuer's keys: an EC P-256 key (DIR/private.pem, kid
      `ec-key-1`), an RSA 2048 key (DIR/rsa-private.pem, kid `rsa-key-1`),
      a rogue EC key that is NOT published (DIR/rogue.pem), and the JWKS of
      the two published public keys (DIR/jwks.json).

  mint DIR SPECS
      Mint one JWT per entry of SPECS, a JSON object {name: spec}. A spec:
        key     "ec" | "rsa" | "rogue" (signed with that private key),
                "hs256-public" (HS256 keyed with the EC public key's PEM: the
                algorithm-confusion attack), or "none" (alg none, no signature)
        kid     header kid (default: the key's published kid)
        iss, aud, scope     the claims (aud may be a string or a list)
        exp_in  seconds from now to `exp` (default 300; negative = expired;
                null = no `exp` at all)
        nbf_in  seconds from now to `nbf` (absent = no `nbf`)
      Prints {"tokens": {name: token}}.

  session URL TOKEN MODE PLAN [--header NAME:VALUE]...
      Connect with `mcp.client.client.Client` in MODE ("auto", "legacy" or a
      modern version such as "2026-07-28"), bearer TOKEN ("-" for none), list
      the tools when PLAN (JSON) has "list": true, then make each call of
      PLAN's "calls" ([[tool, arguments], ...]). Every step's outcome is
      recorded, errors included, so a refused connection prints too.

  ttl URL TOKEN
      One modern session, kept open: list the tools and print them; wait for
      a line on standard input (the test changes the workspace's actions
      meanwhile); list again at once (the client may answer from its cache,
      which honours the server's ttlMs); sleep 2.5 s; list again and print.

  listen URL TOKEN WAIT_S
      One modern session: `subscriptions/listen` for tool list changes;
      print what the server honoured; sleep WAIT_S seconds (longer than the
      server's write bound: the stream must stay open on its keep-alives);
      print that, then wait for a line on standard input (the test changes the
      workspace's actions) and for the next event (at most 10 s); print it,
      whether the stream then ended gracefully, and the tools listed anew.

  load URL TOKEN CALLS CONCURRENCY
      CALLS tools/call of trackOrder (order 1001) by CONCURRENCY workers,
      each with its own modern session; prints counts, calls/s, latency
      percentiles in ms and the client's own CPU seconds.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import traceback

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

# The kids the JWKS publishes; the rogue key reuses the EC one's kid.
KIDS = {"ec": "ec-key-1", "rsa": "rsa-key-1", "rogue": "ec-key-1"}
ALGS = {"ec": "ES256", "rsa": "RS256", "rogue": "ES256"}
FILES = {"ec": "private.pem", "rsa": "rsa-private.pem", "rogue": "rogue.pem"}


def emit(value) -> None:
    """Print one JSON object on its own line, at once."""
    print(json.dumps(value), flush=True)


def described(error: BaseException) -> str:
    """An exception as `Type: message`, with the causes of a group flattened."""
    inner = getattr(error, "exceptions", None)
    if inner:
        return "; ".join(described(e) for e in inner)
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------- keys and tokens


def pem_private(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def keys(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    made = {
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rogue": ec.generate_private_key(ec.SECP256R1()),
    }
    for name, key in made.items():
        with open(os.path.join(directory, FILES[name]), "wb") as f:
            f.write(pem_private(key))
    published = []
    for name, algorithm in (("ec", ECAlgorithm), ("rsa", RSAAlgorithm)):
        jwk = algorithm.to_jwk(made[name].public_key(), as_dict=True)
        jwk.update({"kid": KIDS[name], "alg": ALGS[name], "use": "sig"})
        published.append(jwk)
    jwks = os.path.join(directory, "jwks.json")
    with open(jwks, "w") as f:
        json.dump({"keys": published}, f, indent=2)
    emit({"jwks": jwks, "kids": [k["kid"] for k in published]})


def load_private(directory: str, name: str):
    with open(os.path.join(directory, FILES[name]), "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_parts(header: dict, claims: dict) -> str:
    compact = lambda v: json.dumps(v, separators=(",", ":")).encode()  # noqa: E731
    return f"{b64url(compact(header))}.{b64url(compact(claims))}"


def mint_one(directory: str, spec: dict) -> str:
    now = int(time.time())
    claims = {"iss": spec["iss"], "aud": spec["aud"], "iat": now, "sub": "e2e-assistant"}
    if "scope" in spec:
        claims["scope"] = spec["scope"]
    exp_in = spec.get("exp_in", 300)
    if exp_in is not None:
        claims["exp"] = now + exp_in
    if "nbf_in" in spec:
        claims["nbf"] = now + spec["nbf_in"]
    key = spec["key"]
    if key == "none":
        header = {"alg": "none", "typ": "JWT", "kid": spec.get("kid", KIDS["ec"])}
        return unsigned_parts(header, claims) + "."
    if key == "hs256-public":
        # PyJWT refuses a PEM public key as an HMAC secret, as a verifier
        # should; the attacker's token is built by hand.
        public = load_private(directory, "ec").public_key()
        secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header = {"alg": "HS256", "typ": "JWT", "kid": spec.get("kid", KIDS["ec"])}
        signing_input = unsigned_parts(header, claims)
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"
    headers = {"kid": spec.get("kid", KIDS[key]), "typ": "at+jwt"}
    return jwt.encode(claims, load_private(directory, key), algorithm=ALGS[key], headers=headers)


def mint(directory: str, specs: str) -> None:
    emit({"tokens": {name: mint_one(directory, spec) for name, spec in json.loads(specs).items()}})


# ---------------------------------------------------------------- MCP sessions


def http_client(token: str, extra: dict[str, str]) -> httpx2.AsyncClient:
    headers = dict(extra)
    if token != "-":
        headers["Authorization"] = f"Bearer {token}"
    return create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))


def client(url: str, token: str, mode: str, extra: dict[str, str] | None = None) -> Client:
    """A `Client` on `url` whose every request carries `token` and `extra` headers."""
    transport = streamable_http_client(url, http_client=http_client(token, extra or {}))
    return Client(transport, mode=mode, read_timeout_seconds=60.0)


def tool_view(tool) -> dict:
    return {"name": tool.name, "description": tool.description, "inputSchema": tool.input_schema}


def call_view(result) -> dict:
    return {
        "isError": result.is_error,
        "structured": result.structured_content,
        "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
    }


async def session(url: str, token: str, mode: str, plan: dict, extra: dict[str, str]) -> dict:
    seen: dict = {"mode": mode}
    try:
        async with client(url, token, mode, extra) as c:
            seen["protocol_version"] = c.protocol_version
            seen["server_name"] = c.server_info.name if c.server_info else None
            if plan.get("list"):
                try:
                    listed = await c.list_tools()
                    seen["tools"] = [tool_view(t) for t in listed.tools]
                    seen["ttl_ms"] = listed.ttl_ms
                except Exception as e:  # a refusal is an outcome to report
                    seen["list_error"] = described(e)
            seen["calls"] = []
            for name, arguments in plan.get("calls", []):
                try:
                    outcome = call_view(await c.call_tool(name, arguments))
                except Exception as e:
                    outcome = {"raised": described(e)}
                outcome["name"] = name
                seen["calls"].append(outcome)
    except Exception as e:
        seen["connect_error"] = described(e)
    return seen


async def ttl(url: str, token: str) -> None:
    async with client(url, token, "2026-07-28") as c:
        first = await c.list_tools()
        emit({"step": "first", "names": [t.name for t in first.tools], "ttl_ms": first.ttl_ms})
        # The test changes the actions, then says so.
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            raise SystemExit("standard input closed before the change was made")
        within = await c.list_tools()
        await asyncio.sleep(2.5)
        after = await c.list_tools()
        emit(
            {
                "step": "after",
                "within_ttl": [t.name for t in within.tools],
                "after_ttl": [t.name for t in after.tools],
                "ttl_ms": after.ttl_ms,
            }
        )


async def listen(url: str, token: str, wait_s: float) -> None:
    async with client(url, token, "2026-07-28") as c:
        async with c.listen(tools_list_changed=True) as sub:
            emit({"step": "listening", "honored": str(sub.honored)})
            await asyncio.sleep(wait_s)
            emit({"step": "still-open"})
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                raise SystemExit("standard input closed before the change was made")
            seen: dict = {"step": "event"}
            try:
                with anyio_fail_after(10):
                    event = await sub.__anext__()
                seen["event"] = type(event).__name__
            except Exception as e:
                seen["event_error"] = described(e)
            try:
                with anyio_fail_after(10):
                    await sub.__anext__()
                seen["ended"] = "another event"
            except StopAsyncIteration:
                seen["ended"] = "graceful"
            except Exception as e:
                seen["ended"] = described(e)
        listed = await c.list_tools()
        seen["names"] = [t.name for t in listed.tools]
        emit(seen)


def anyio_fail_after(seconds: float):
    import anyio

    return anyio.fail_after(seconds)


def percentile(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


async def load(url: str, token: str, calls: int, concurrency: int) -> None:
    latencies: list[float] = []
    failures: list[str] = []
    remaining = iter(range(calls))

    async def worker() -> None:
        async with client(url, token, "2026-07-28") as c:
            for _ in remaining:
                started = time.perf_counter()
                try:
                    result = await c.call_tool("trackOrder", {"order_id": "1001"})
                    if result.is_error:
                        failures.append(json.dumps(result.structured_content))
                except Exception as e:
                    failures.append(described(e))
                latencies.append((time.perf_counter() - started) * 1000.0)

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    # The client's own CPU time: near `elapsed`, the client is the bottleneck.
    client_cpu = time.process_time() - cpu_started
    ordered = sorted(latencies)
    emit(
        {
            "calls": len(latencies),
            "ok": len(latencies) - len(failures),
            "failures": len(failures),
            "first_failures": failures[:5],
            "concurrency": concurrency,
            "elapsed_s": round(elapsed, 3),
            "client_cpu_s": round(client_cpu, 3),
            "calls_per_s": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": round(percentile(ordered, 50), 2),
            "p90_ms": round(percentile(ordered, 90), 2),
            "p99_ms": round(percentile(ordered, 99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else 0.0,
        }
    )


# ---------------------------------------------------------------- command line


def headers_from(args: list[str]) -> dict[str, str]:
    extra: dict[str, str] = {}
    while args:
        flag, value, *args = args
        if flag != "--header" or ":" not in value:
            raise SystemExit(f"expected --header NAME:VALUE, got {flag} {value}")
        name, _, text = value.partition(":")
        extra[name.strip()] = text.strip()
    return extra


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    command, args = argv[0], argv[1:]
    if command == "keys" and len(args) == 1:
        keys(args[0])
    elif command == "mint" and len(args) == 2:
        mint(args[0], args[1])
    elif command == "session" and len(args) >= 4:
        url, token, mode, plan = args[:4]
        emit(asyncio.run(session(url, token, mode, json.loads(plan), headers_from(args[4:]))))
    elif command == "ttl" and len(args) == 2:
        asyncio.run(ttl(args[0], args[1]))
    elif command == "listen" and len(args) == 3:
        asyncio.run(listen(args[0], args[1], float(args[2])))
    elif command == "load" and len(args) == 4:
        asyncio.run(load(args[0], args[1], int(args[2]), int(args[3])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.exit(2)
