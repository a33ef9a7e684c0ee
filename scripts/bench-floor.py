#!/usr/bin/env python3
"""The "floor" for scripts/bench: the engine calls a run needs, made by a minimal client.

Raw HTTP/1.1 over the engine's Unix socket, standard library only, no retries, no
checks beyond the status codes. Whatever moat or the Docker CLI take above these
numbers is their own overhead.

    bench-floor.py true IMAGE
        The calls `moat run -- true` makes, with the same create body (Init, the current
        directory bind-mounted at /workspace as the working directory, moat's labels,
        stdout/stderr attached): create; POST wait?condition=next-exit and read its
        response head (the engine sends it once the waiter is registered); attach;
        start; read the attach stream to its end and the wait body; delete.
        Prints `floor_ms=<ms>`: from just before create to just after delete, measured
        inside this process, so without the interpreter's start-up.

    bench-floor.py throughput IMAGE BYTES
        The same lifecycle around `sh -c GENERATOR` writing BYTES to stdout, with
        attach (stream=1&stdout=1&stderr=1) opened before start; the attach stream is
        read to the end and only counted (not demultiplexed, not written anywhere).
        Prints `floor_ms=<ms> stream_bytes=<n> payload_bytes=<BYTES>`.

Containers are named with --name PREFIX-<pid>-<n> (default moat-bench-floor) so a caller
can clean them up by name. The socket is $DOCKER_HOST (unix://PATH) or
/var/run/docker.sock.
"""

import http.client
import json
import os
import socket
import sys
import time

API = "/v1.41"


def socket_path():
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return "/var/run/docker.sock"
    if host.startswith("unix://"):
        return host[len("unix://"):]
    sys.exit(f"bench-floor: DOCKER_HOST={host} is not a unix:// socket")


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket; keep-alive, like any real client's agent."""

    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def call(conn, method, path, body=None, ok=(200, 201, 204)):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, API + path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status not in ok:
        sys.exit(f"bench-floor: {method} {path}: {resp.status} {payload[:300]!r}")
    return json.loads(payload) if payload else None


def start_wait(path, cid):
    """POST wait?condition=next-exit and return once its head is in (waiter registered)."""
    conn = UnixConnection(path)
    conn.request("POST", f"{API}/containers/{cid}/wait?condition=next-exit")
    resp = conn.getresponse()  # reads the status line and headers only
    if resp.status != 200:
        sys.exit(f"bench-floor: wait: {resp.status} {resp.read()[:300]!r}")
    return conn, resp


def open_attach(path, cid):
    """A raw attach stream opened before start; returns (socket, bytes read past the head)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(
        (
            f"POST {API}/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("bench-floor: attach: connection closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" " and b" 200 " not in status + b" ":
        sys.exit(f"bench-floor: attach: {status!r}")
    return s, rest


def lifecycle(image, cmd, name, payload=None):
    path = socket_path()
    conn = UnixConnection(path)
    t0 = time.perf_counter()
    # The body moat sends, so the engine does the same work for both.
    created = call(
        conn,
        "POST",
        f"/containers/create?name={name}",
        {
            "Image": image,
            "Cmd": cmd,
            "Env": [],
            "WorkingDir": "/workspace",
            # Not moat.managed: moat clean must never take the floor's container for its own.
            "Labels": {"moat.bench": "floor", "moat.run_id": name},
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": {
                "Init": True,
                "Mounts": [
                    {"Type": "bind", "Source": os.getcwd(), "Target": "/workspace"}
                ],
            },
        },
    )
    cid = created["Id"]
    counted = 0
    try:
        wconn, wresp = start_wait(path, cid)
        att, rest = open_attach(path, cid)
        counted = len(rest)
        call(conn, "POST", f"/containers/{cid}/start")
        if att is not None:  # always: moat reads the stream to its end
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            while True:
                n = att.recv_into(view)
                if n == 0:
                    break
                counted += n
            att.close()
        status = json.loads(wresp.read())
        wconn.close()
    finally:
        call(conn, "DELETE", f"/containers/{cid}?force=1", ok=(204, 404))
    t1 = time.perf_counter()
    code = status.get("StatusCode")
    if code != 0:
        sys.exit(f"bench-floor: container exited {code}: {status}")
    return (t1 - t0) * 1000.0, counted


def main(argv):
    prefix = "moat-bench-floor"
    if len(argv) >= 3 and argv[1] == "--name":
        prefix = argv[2]
        argv = argv[:1] + argv[3:]
    if len(argv) < 3:
        sys.exit(__doc__)
    name = f"{prefix}-{os.getpid()}"
    what, image = argv[1], argv[2]
    if what == "true" and len(argv) == 3:
        ms, _ = lifecycle(image, ["true"], name)
        print(f"floor_ms={ms:.3f}")
    elif what == "throughput" and len(argv) == 4:
        size = int(argv[3])
        gen = (
            "yes $(printf 'x%.0s' $(seq 1 99)) | head -c " + str(size)
        )
        ms, counted = lifecycle(image, ["sh", "-c", gen], name, payload=size)
        print(f"floor_ms={ms:.3f} stream_bytes={counted} payload_bytes={size}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
