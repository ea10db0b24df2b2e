#!/usr/bin/env python3
"""Fault-injecting HTTP/1.1 proxy for testing Coffer's S3 backend.

It sits between an S3 client and an S3 server (normally `rclone serve s3` on
loopback) and, following a deterministic plan, answers some requests with
errors, drops/resets/stalls the connection or truncates the response, so
tests can check that retries, timeouts and integrity checks really work.
Everything else is forwarded byte-for-byte (SigV4 signatures stay valid).

Usage:
    python3 s3-fault-proxy.py --upstream 127.0.0.1:PORT --plan PLAN \
        [--listen-port 0] [--stall-seconds 30] [--log FILE]

Once listening on 127.0.0.1 it prints `PORT <n>` as the first stdout line,
then runs until SIGTERM/SIGINT.

Plans (requests are counted across all connections, starting at 1):
    none                   forward everything
    every:N:M1,M2,...      requests N, 2N, 3N... fail with M1, M2, ... in rotation
    always:MODE[:METHOD[:TEXT]]
                           every request (or every one with METHOD, and TEXT
                           in its target) fails
    first:K:MODE           the first K requests fail, then all pass

Modes:
    500 / 503 / 429  answer with an S3 XML error (InternalError / SlowDown /
                     TooManyRequestsException) without forwarding
    drop             read the request, close the connection without answering
    truncate         forward, relay the headers and half of the body, close
                     (bodiless responses: half of the status line instead)
    stall            read the request, wait --stall-seconds, close silently
    reset            read the request, close with RST (SO_LINGER 0)

Each request appends one line to --log (stderr if not given):
    <seq> <METHOD> <target> <forwarded|MODE|upstream-error> <status or ->
"""

import argparse
import asyncio
import signal
import socket
import struct
import sys

MODES = ("500", "503", "429", "drop", "truncate", "stall", "reset")

# Status line and S3 error code for the modes that answer without forwarding.
# The codes are ones AWS SDKs classify as retryable (transient or throttling).
ERROR_RESPONSES = {
    "500": (500, "Internal Server Error", "InternalError",
            "We encountered an internal error. Please try again."),
    "503": (503, "Service Unavailable", "SlowDown",
            "Please reduce your request rate."),
    "429": (429, "Too Many Requests", "TooManyRequestsException",
            "Too many requests."),
}

MAX_HEAD_BYTES = 64 * 1024


class Plan:
    """Decides, from the request's sequence number and method, which fault (if any) to inject."""

    def __init__(self, spec):
        self.spec = spec
        parts = spec.split(":")
        self.kind = parts[0]
        self.faults_injected = 0  # drives the rotation of `every`
        try:
            if self.kind == "none" and len(parts) == 1:
                return
            if self.kind == "every" and len(parts) == 3:
                self.n = int(parts[1])
                self.modes = parts[2].split(",")
                if self.n < 1:
                    raise ValueError
            elif self.kind == "always" and len(parts) in (2, 3, 4):
                self.modes = [parts[1]]
                self.method = parts[2].upper() if len(parts) >= 3 and parts[2] else None
                self.target_text = parts[3] if len(parts) == 4 else None
            elif self.kind == "first" and len(parts) == 3:
                self.k = int(parts[1])
                self.modes = [parts[2]]
            else:
                raise ValueError
        except ValueError:
            raise SystemExit(f"invalid plan: {spec!r}")
        for mode in self.modes:
            if mode not in MODES:
                raise SystemExit(f"invalid mode {mode!r} in plan {spec!r}; modes: {', '.join(MODES)}")

    def decide(self, seq, method, target):
        if self.kind == "none":
            return None
        if self.kind == "every":
            if seq % self.n != 0:
                return None
            mode = self.modes[self.faults_injected % len(self.modes)]
            self.faults_injected += 1
            return mode
        if self.kind == "always":
            hit = self.method in (None, method) and (self.target_text is None or self.target_text in target)
            return self.modes[0] if hit else None
        if self.kind == "first":
            return self.modes[0] if seq <= self.k else None
        return None


class Request:
    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) in wire order
        self.body = body  # raw body bytes exactly as received (chunk framing kept)

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def client_wants_close(self):
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" not in conn
        return "close" in conn

    def upstream_bytes(self):
        """The request as sent upstream: unchanged except `Connection: close`.

        Host and x-amz-* headers are part of the SigV4 signature, so they are
        copied verbatim; only hop-by-hop connection headers are replaced.
        """
        lines = [f"{self.method} {self.target} {self.version}"]
        for k, v in self.headers:
            if k.lower() in ("connection", "keep-alive", "proxy-connection"):
                continue
            lines.append(f"{k}: {v}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def parse_head(raw_head):
    """Split an HTTP head (without the final blank line) into its first line and headers."""
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


async def read_chunked_body(reader):
    """Read a chunked body, returning it raw (framing included) so it is forwarded unchanged."""
    raw = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        raw += size_line
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            # Optional trailer fields, terminated by an empty line.
            while True:
                line = await reader.readuntil(b"\r\n")
                raw += line
                if line == b"\r\n":
                    return bytes(raw)
        raw += await reader.readexactly(size + 2)  # chunk data + CRLF


async def read_request(reader, writer):
    """Read one full request, or return None if the client closed the connection between requests."""
    try:
        raw_head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise
        return None
    request_line, headers = parse_head(raw_head[:-4])
    method, target, version = request_line.split(" ", 2)
    req = Request(method.upper(), target, version, headers, b"")

    # A client sending `Expect: 100-continue` waits before sending the body.
    # We need the body before deciding anything, so we answer the interim
    # response ourselves (and later strip upstream's one, see split_response).
    if (req.header("expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()

    if "chunked" in (req.header("transfer-encoding") or "").lower():
        req.body = await read_chunked_body(reader)
    else:
        length = int(req.header("content-length") or 0)
        req.body = await reader.readexactly(length) if length else b""
    return req


def split_response(raw):
    """Return (status, head_bytes, body_bytes) of a raw response, dropping any 1xx interim responses."""
    while True:
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            return None, raw, b""
        head, rest = raw[:end + 4], raw[end + 4:]
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return None, head, rest
        if 100 <= status < 200:
            raw = rest
            continue
        return status, head, rest


def is_self_delimited(method, status, headers):
    """True if the client can find the end of the response without waiting for EOF."""
    if method == "HEAD" or status in (204, 304) or (status is not None and status < 200):
        return True
    for k, v in headers:
        if k.lower() == "content-length" or (k.lower() == "transfer-encoding" and "chunked" in v.lower()):
            return True
    return False


def error_response(mode, req):
    status, reason, code, message = ERROR_RESPONSES[mode]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{req.target.split('?')[0]}</Resource>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        "x-amz-request-id: fault-proxy\r\n"
    )
    if mode in ("503", "429"):
        head += "Retry-After: 1\r\n"
    # A response to HEAD must not carry a body: on a keep-alive connection the
    # client would read those bytes as the start of the next response.
    return (head + "\r\n").encode() + (b"" if req.method == "HEAD" else body)


class Proxy:
    def __init__(self, upstream_host, upstream_port, plan, stall_seconds, log_file):
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan
        self.stall_seconds = stall_seconds
        self.log_file = log_file
        self.seq = 0
        self.tasks = set()

    def log(self, seq, req, outcome, status):
        line = f"{seq} {req.method} {req.target} {outcome} {status if status is not None else '-'}\n"
        self.log_file.write(line)
        self.log_file.flush()  # tests read the log while the proxy runs

    async def forward(self, req):
        """Send the request on a fresh upstream connection and return the whole raw response."""
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            writer.write(req.upstream_bytes())
            await writer.drain()
            return await reader.read()  # until EOF: we asked for Connection: close
        finally:
            writer.close()

    async def handle_client(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            while await self.handle_one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass  # client went away mid-request or sent garbage: just drop it
        except asyncio.CancelledError:
            pass  # shutting down; finishing quietly keeps asyncio from logging it
        finally:
            self.tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def handle_one(self, reader, writer):
        """Serve one request; return True to keep the client connection for another."""
        req = await read_request(reader, writer)
        if req is None:
            return False
        self.seq += 1
        seq = self.seq
        mode = self.plan.decide(seq, req.method, req.target)

        if mode in ERROR_RESPONSES:
            self.log(seq, req, mode, ERROR_RESPONSES[mode][0])
            writer.write(error_response(mode, req))
            await writer.drain()
            return not req.client_wants_close()
        if mode == "drop":
            self.log(seq, req, mode, None)
            writer.close()
            return False
        if mode == "reset":
            self.log(seq, req, mode, None)
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if mode == "stall":
            self.log(seq, req, mode, None)
            await asyncio.sleep(self.stall_seconds)
            writer.close()
            return False

        try:
            raw = await self.forward(req)
        except OSError:
            self.log(seq, req, "upstream-error", 502)
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return False
        status, head, body = split_response(raw)
        self.log(seq, req, mode or "forwarded", status)

        if mode == "truncate":
            # Half the body makes the client see a short read. Bodiless
            # responses (HEAD, PUT's empty 200, 204) would look complete that
            # way, so send half the status line instead: some clients (e.g.
            # Python's http.client) accept a header block cut short by EOF.
            cut = head + body[:len(body) // 2] if body else head[:head.find(b"\r\n") // 2]
            writer.write(cut)
            await writer.drain()
            writer.close()
            return False

        _, headers = parse_head(head[:-4])
        # Upstream always says `Connection: close` because we asked it to, not
        # because the client must reconnect. If the response is framed by
        # Content-Length/chunked, drop that header and keep the client's
        # connection alive, as a real S3 endpoint would.
        keep_alive = not req.client_wants_close() and is_self_delimited(req.method, status, headers)
        if keep_alive:
            lines = head[:-4].split(b"\r\n")
            head = b"\r\n".join(l for l in lines if not l.lower().startswith(b"connection:")) + b"\r\n\r\n"
        writer.write(head + body)
        await writer.drain()
        if not keep_alive:
            writer.close()
        return keep_alive


async def main():
    parser = argparse.ArgumentParser(description="Fault-injecting HTTP proxy for S3 tests.")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    parser.add_argument("--listen-port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--plan", required=True, help="none | every:N:MODES | always:MODE[:METHOD[:TEXT]] | first:K:MODE")
    parser.add_argument("--stall-seconds", type=float, default=30.0)
    parser.add_argument("--log", help="file to append one line per request to (default: stderr)")
    args = parser.parse_args()

    host, _, port = args.upstream.rpartition(":")
    plan = Plan(args.plan)
    log_file = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr
    proxy = Proxy(host or "127.0.0.1", int(port), plan, args.stall_seconds, log_file)

    server = await asyncio.start_server(proxy.handle_client, "127.0.0.1", args.listen_port,
                                        limit=MAX_HEAD_BYTES)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # A parent that starts us from a thread with signals blocked (Foundation's Process in a
    # Swift test does) passes the mask on; unblocked, SIGTERM reaches the handler.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    await stop.wait()

    server.close()
    for task in list(proxy.tasks):  # e.g. stalled connections
        task.cancel()
    await asyncio.gather(*proxy.tasks, return_exceptions=True)
    if log_file is not sys.stderr:
        log_file.close()


if __name__ == "__main__":
    asyncio.run(main())
