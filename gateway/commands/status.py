"""`wardgate status`: the store and every gateway node running on this machine."""

from __future__ import annotations

import argparse
import json
import urllib.request
from typing import Any

from events.store import EventStore, StoreError
from gateway.commands.common import print_json, settings_from


def register(sub: Any) -> None:
    status = sub.add_parser(
        "status", help="store reachability, listeners, sessions, approvals, writer queue and lag"
    )
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    report: dict[str, Any] = {"store": {"url": settings.store.display}, "nodes": []}
    healthy = True
    try:
        store = EventStore(settings.store)
        try:
            report["store"].update(reachable=True, events=store.max_id(), backend=store.backend)
        finally:
            store.close()
    except StoreError as exc:
        healthy = False
        report["store"].update(reachable=False, error=str(exc))
    for marker in sorted(settings.data_dir.glob("status-*.json")):
        try:
            url = json.loads(marker.read_text())["url"]
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
                report["nodes"].append(json.loads(response.read()))
        except (OSError, ValueError, KeyError) as exc:
            healthy = False
            report["nodes"].append({"marker": str(marker), "error": f"not answering: {exc}"})
    if args.json:
        print_json(report)
        return 0 if healthy else 1
    store_line = report["store"]
    if store_line.get("reachable"):
        print(f"store   {store_line['url']}: reachable, {store_line['events']} events")
    else:
        print(f"store   {store_line['url']}: UNREACHABLE: {store_line.get('error')}")
    if not report["nodes"]:
        print("nodes   none running on this machine")
    for node in report["nodes"]:
        if "error" in node:
            print(f"node    {node['marker']}: {node['error']}")
            continue
        w = node["writer"]
        print(
            f"node    {node['node']} (pid {node['pid']}, up {node['uptime_s']}s): "
            f"listeners {node['listeners']}, {node['sessions']} session(s), "
            f"{node['pending_approvals']} pending approval(s), policy v{node['policy_version']}"
        )
        print(
            f"        store writable={node['store']['writable']} "
            f"following={node['store']['following']}; writer queue {w['queue_depth']}, "
            f"lag {w['last_lag_ms']:.1f} ms, {w['transactions']} txns / {w['events']} events, "
            f"{w['failures']} failures, {w['lost']} lost"
        )
    return 0 if healthy else 1
