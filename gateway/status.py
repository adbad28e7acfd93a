"""A node's health and metrics, served as JSON on a loopback HTTP port.

``GET /status`` answers with the store's reachability (the writer's and the follower's last
outcome), listeners, live sessions, pending approvals, and the writer's queue depth, lag and
counters. The bound address is written to ``<data dir>/status-<node>.json`` so that
``wardgate status`` on the same machine finds every node without configuration.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import trio

from gateway.context import GatewayContext

logger = logging.getLogger("wardgate.status")


def snapshot(ctx: GatewayContext, ports: dict[str, int], started_at: float) -> dict[str, Any]:
    writer = ctx.writer
    return {
        "node": ctx.node,
        "pid": os.getpid(),
        "uptime_s": round(time.time() - started_at, 1),
        "store": {
            "backend": ctx.store.backend,
            "url": ctx.store.settings.display,
            "writable": writer.healthy,
            "following": ctx.views.healthy,
            "position": ctx.views.position,
        },
        "listeners": ports,
        "sessions": len(ctx.sessions),
        "pending_approvals": len(ctx.views.approvals.pending()),
        "writer": asdict(writer.stats),
        "policy_version": ctx.views.policy.version,
    }


async def serve_status(
    ctx: GatewayContext,
    ports: dict[str, int],
    address: tuple[str, int],
    data_dir: Path,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    started_at = time.time()

    async def handle(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(5):
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 8192:
                    data = await stream.receive_some(4096)
                    if not data:
                        return
                    request += data
                line = request.split(b"\r\n", 1)[0].decode(errors="replace")
                if line.startswith("GET /status"):
                    body = json.dumps(snapshot(ctx, ports, started_at)).encode()
                    head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                else:
                    body, head = b'{"error": "not found"}', b"HTTP/1.0 404 Not Found\r\n"
                await stream.send_all(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except (trio.BrokenResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_tcp_listeners(address[1], host=address[0])
    port = listeners[0].socket.getsockname()[1]
    marker = data_dir / f"status-{ctx.node}.json"
    marker.write_text(
        json.dumps(
            {"node": ctx.node, "url": f"http://{address[0]}:{port}/status", "pid": os.getpid()}
        )
    )
    task_status.started(port)
    try:
        await trio.serve_listeners(handle, listeners)
    finally:
        marker.unlink(missing_ok=True)
