#!/usr/bin/env python3
"""Follow one Errand agent's progress events from Python, to the event that ends it.

    python3 follow.py <agent-id> [--after SEQ] [--server URL] [--creds FILE] [--prefix errand]

Prints one JSON line per event: {"seq", "subject", "kind", "contentType", "event"}. `seq` is the
event's sequence in the events stream: run again with `--after <the last seq you handled>` after a
disconnect, a crash or `--max`, and you get every later event once — no gap, no repeat.

It reads the events with an ordered consumer (ephemeral, in stream order, re-created by nats-py
from the last sequence on a reconnect) filtered to `<prefix>.agent.<id>.ev.>`, and decodes each
body by its `Content-Type` header: `application/json` (hosts run with ERRAND_EVENT_FORMAT=json)
or `application/msgpack` (the default; needs `pip install msgpack`). It stops after the event that
ends the agent — `event.done`, `event.failed`, or the `event.state` that says `cancelled` — which
hosts publish last: nothing of the agent comes after it.

Needs: `pip install nats-py` (and `msgpack` unless every event is JSON). With `--creds` (a
deployment with credentials, as `errand up` runs one), nats-py's `nkeys` extra signs the server's
challenge; where that package is missing, PyNaCl (`pip install pynacl`) does it here instead. See
docs/protocol.md, "Following an agent from any language".

Exit codes: 0 the agent ended (or --max events were printed), 2 bad arguments, 3 nothing came for
--timeout seconds, 4 an event could not be decoded (msgpack without the msgpack package), 5 the
server refused the connection's credentials (or their absence).
"""

import argparse
import asyncio
import base64
import json
import os
import re
import sys

try:
    import nats
    from nats.errors import AuthorizationError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import ConsumerConfig, DeliverPolicy
except ImportError:  # pragma: no cover - said plainly instead of a traceback
    sys.stderr.write("follow.py needs nats-py: python3 -m pip install nats-py msgpack\n")
    sys.exit(2)

try:
    import msgpack
except ImportError:
    msgpack = None  # JSON events still work


class Undecodable(Exception):
    pass


def events_stream(prefix: str) -> str:
    """The events stream of a prefix: `errand` -> ERRAND_EVENTS, `acme.errand` -> ACME_ERRAND_EVENTS."""
    return prefix.replace(".", "_").upper() + "_EVENTS"


def decode(data: bytes, content_type: str, seq: int) -> dict:
    mime = (content_type or "").split(";")[0].strip().lower()
    # No header: an event from a host before Content-Type was always sent; msgpack unless it is JSON text.
    if mime == "application/json" or mime.endswith("+json") or (not mime and data[:1] == b"{"):
        return json.loads(data)
    if mime in ("", "application/msgpack", "application/x-msgpack", "application/vnd.msgpack"):
        if msgpack is None:
            raise Undecodable(
                f"event {seq} is msgpack and the msgpack package is missing: "
                "python3 -m pip install msgpack, or run the hosts with ERRAND_EVENT_FORMAT=json"
            )
        return msgpack.unpackb(data, raw=False)
    raise Undecodable(f"event {seq} has an unknown Content-Type {content_type!r}")


def creds_callbacks(path: str):
    """nats-py's user_jwt_cb and signature_cb for a .creds file, with PyNaCl: what its
    `user_credentials` option does through the `nkeys` package, for machines that lack it. The file
    holds the user's JWT and its nkey seed (base32 of two prefix bytes, the 32-byte Ed25519 seed and
    a CRC); the server's nonce is signed with that key."""
    try:
        from nacl.signing import SigningKey
    except ImportError:
        sys.stderr.write("--creds needs nats-py's nkeys extra or PyNaCl: python3 -m pip install 'nats-py[nkeys]' (or pynacl)\n")
        sys.exit(2)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"-{3,}[^\n]*BEGIN[^\n]*-{3,}\s*\n\s*(\S+)\s*\n\s*-{3,}[^\n]*END", text)
    if len(blocks) < 2 or not blocks[1].startswith("SU"):
        sys.stderr.write(f"{path} is not a user .creds file (a JWT and a user nkey seed, as `errand creds` writes them)\n")
        sys.exit(2)
    jwt, seed = blocks[0], blocks[1]
    raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    key = SigningKey(bytes(raw[2:34]))
    return (lambda: bytearray(jwt.encode())), (lambda nonce: base64.b64encode(key.sign(nonce.encode()).signature))


def is_ending(event: dict) -> bool:
    kind = event.get("kind")
    return kind in ("event.done", "event.failed") or (kind == "event.state" and event.get("status") == "cancelled")


async def follow(args: argparse.Namespace) -> int:
    options = {"servers": [args.server], "max_reconnect_attempts": -1}
    if args.creds:
        try:
            import nkeys  # noqa: F401 - nats-py signs with it
            options["user_credentials"] = args.creds
        except ImportError:
            options["user_jwt_cb"], options["signature_cb"] = creds_callbacks(args.creds)
    if args.inbox_prefix:
        options["inbox_prefix"] = args.inbox_prefix
    # Reconnect for ever once connected; but a server that refuses these credentials would refuse
    # every retry too: say so and stop instead of trying for ever.
    refused = asyncio.Event()

    async def on_error(err: Exception) -> None:
        if isinstance(err, AuthorizationError) or "authorization" in str(err).lower():
            refused.set()

    options["error_cb"] = on_error
    connecting = asyncio.ensure_future(nats.connect(**options))
    watching = asyncio.ensure_future(refused.wait())
    await asyncio.wait({connecting, watching}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        sys.stderr.write(f"{args.server} refused the connection: authorization failed ({'the credentials in ' + args.creds if args.creds else 'it needs --creds'})\n")
        return 5
    watching.cancel()
    nc = connecting.result()
    try:
        js = nc.jetstream()
        subject = f"{args.prefix}.agent.{args.agent_id}.ev.>"
        if args.after > 0:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=args.after + 1)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        sub = await js.subscribe(subject, stream=args.stream or events_stream(args.prefix), ordered_consumer=True, config=config)
        printed = 0
        seen_ids = set()
        idle = 0.0
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except NatsTimeout:
                idle += 1.0
                if args.timeout is not None and idle >= args.timeout:
                    sys.stderr.write(f"no event for {args.timeout:g} s; resume with --after {args.after}\n")
                    return 3
                continue
            idle = 0.0
            seq = msg.metadata.sequence.stream
            headers = msg.headers or {}
            # A host that re-publishes a step after a crash sends the same Nats-Msg-Id: JetStream
            # drops the repeat within its duplicate window; this drops one that came later.
            msg_id = headers.get("Nats-Msg-Id")
            if msg_id and msg_id in seen_ids:
                args.after = seq
                continue
            if msg_id:
                seen_ids.add(msg_id)
            content_type = headers.get("Content-Type", "")
            try:
                event = decode(msg.data, content_type, seq)
            except (Undecodable, ValueError) as err:
                sys.stderr.write(f"{err}\n")
                return 4
            print(json.dumps({"seq": seq, "subject": msg.subject, "kind": event.get("kind"), "contentType": content_type, "event": event}), flush=True)
            args.after = seq
            printed += 1
            if is_ending(event):
                return 0
            if args.max is not None and printed >= args.max:
                sys.stderr.write(f"stopped after {printed} events; resume with --after {seq}\n")
                return 0
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="Follow an Errand agent's progress events to the event that ends it.")
    parser.add_argument("agent_id")
    parser.add_argument("--after", type=int, default=0, help="resume after this events-stream sequence (0: from the agent's first event)")
    parser.add_argument("--server", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--creds", default=os.environ.get("NATS_CREDS"), help="a .creds file (errand creds), e.g. the submitter's")
    parser.add_argument("--inbox-prefix", default=None, help="the identity's reply prefix, _INBOX_<user> (e.g. _INBOX_submitter) on a deployment with credentials")
    parser.add_argument("--prefix", default=os.environ.get("ERRAND_PREFIX", "errand"), help="the deployment's subject prefix")
    parser.add_argument("--stream", default=None, help="the events stream (default: derived from --prefix)")
    parser.add_argument("--max", type=int, default=None, help="stop after this many events (then resume with --after)")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds without an event")
    args = parser.parse_args()
    if args.after < 0 or (args.max is not None and args.max < 1):
        parser.error("--after must be 0 or more and --max 1 or more")
    if args.creds and not args.inbox_prefix:
        parser.error("with --creds give --inbox-prefix too (_INBOX_<user>, e.g. _INBOX_submitter): an identity may read replies only under its own prefix")
    return asyncio.run(follow(args))


if __name__ == "__main__":
    sys.exit(main())
