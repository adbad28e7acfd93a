"""`wardgate serve --config FILE`: run the gateway until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from gateway.commands.common import settings_from


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the gateway (listeners from the settings file)")
    serve.add_argument("--log-level", default="INFO")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings_from(args)
    import trio  # noqa: PLC0415 - keep the other commands' start-up light

    from gateway.server import Gateway  # noqa: PLC0415

    grace = float(settings.section("gateway").get("shutdown_grace", 30))

    async def main() -> None:
        gateway = Gateway(settings)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                started = await nursery.start(gateway.run)
                for name, port in started.ports.items():
                    print(f"wardgate: target {name} listening on port {port}", flush=True)
                async for signum in signals:
                    print(
                        f"wardgate: {signal.Signals(signum).name}: shutting down "
                        f"(up to {grace:.0f}s for commands in flight)",
                        flush=True,
                    )
                    await gateway.shutdown(grace)
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except KeyboardInterrupt:
        return 0
    return 0
