"""`wardgate demo [agent]`: the whole product on one machine; a scripted agent for it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gateway.config import load_settings
from gateway.errors import UserError


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run everything on this machine: dev IdP, gateway, demo data, policy",
        description="Starts the development IdP, seeds a synthetic shop into the local "
        "MariaDB, vaults its credentials, applies the demo policy and runs the gateway on "
        "the embedded SQLite store. `wardgate demo agent` runs a scripted agent against it.",
    )
    demo.add_argument("action", nargs="?", choices=["run", "agent"], default="run")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="default: $WARDGATE_DEMO_DIR or ./.wardgate-demo",
    )
    demo.add_argument("--reset", action="store_true", help="start from an empty data directory")
    demo.add_argument("--mysql-port", type=int, default=3307)
    demo.add_argument("--ssh-port", type=int, default=2222)
    demo.add_argument("--idp-port", type=int, default=8900)
    demo.set_defaults(func=cmd_demo)


def _data_dir(args: argparse.Namespace) -> Path:
    chosen: Path | None = args.data_dir
    return (chosen or Path(os.environ.get("WARDGATE_DEMO_DIR") or ".wardgate-demo")).absolute()


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo  # noqa: PLC0415

    data = _data_dir(args)
    if args.action == "agent":
        from gateway.demo_agent import run_agent  # noqa: PLC0415

        config = data / "wardgate.toml"
        if not config.exists():
            raise UserError(f"no demo in {data}: start `wardgate demo` first")
        return run_agent(load_settings(config))
    return demo.run_demo(
        demo.DemoOptions(
            data_dir=data,
            reset=args.reset,
            mysql_port=args.mysql_port,
            ssh_port=args.ssh_port,
            idp_port=args.idp_port,
        )
    )
