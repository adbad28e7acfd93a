"""The gateway process: one trio nursery holding every long-lived task.

Theory of operation
-------------------
``Gateway.run`` opens the store, then starts, in order: the event writer (every event goes
through it), the live views follower (policy, approvals, operator requests), the approval
sweeper, a WAL checkpoint task (SQLite: checkpoints off the hot path), and one listener per
target. ``task_status.started`` reports the bound ports, so tests and ``wardgate demo`` can
bind port 0. Cancelling the nursery stops everything; connection tasks record ``Closed``.

The settings tables used here: ``[identity]`` (see gateway/IDENTITY.md), ``[policy] file``
(applied on first start when the store has no policy yet), ``[[mysql]]``, ``[[ssh]]``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import trio

from events.store import EventStore, StoreError
from gateway.approvals import ApprovalDesk
from gateway.config import Settings
from gateway.context import GatewayContext
from gateway.errors import UserError
from gateway.guard import Guard
from gateway.identity import IdentityProviderUnavailable, TokenVerifier
from gateway.identity_settings import IdentitySettings, IdentitySettingsError
from gateway.keyframe_process import KeyframeProcess
from gateway.live import LiveViews
from gateway.mysql.proxy import MySQLProxy
from gateway.policy import PolicyError
from gateway.policy_admin import apply_policy
from gateway.recovery import close_abandoned_sessions
from gateway.ssh.proxy import serve_ssh
from gateway.status import serve_status
from gateway.targets import mysql_targets, parse_address, ssh_targets
from gateway.vault import Vault, VaultError
from gateway.writer import EventWriter

logger = logging.getLogger("wardgate.server")


@dataclass(slots=True, kw_only=True)
class Started:
    ports: dict[str, int] = field(default_factory=dict)
    context: GatewayContext | None = None
    status_port: int = 0


class Gateway:
    def __init__(self, settings: Settings, *, verifier: TokenVerifier | None = None) -> None:
        self.settings = settings
        self.verifier = verifier
        self.context: GatewayContext | None = None
        self.listen_scopes: list[trio.CancelScope] = []
        self.main_scope: trio.CancelScope | None = None

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting, let commands in flight finish (up to ``grace`` seconds), close
        every session with reason ``shutdown``, store what is queued, then stop."""
        for scope in self.listen_scopes:
            scope.cancel()
        ctx = self.context
        if ctx is not None:
            ctx.sessions.drain_all()
            with trio.move_on_after(grace):
                await ctx.sessions.wait_empty()
            if len(ctx.sessions):
                logger.warning(
                    "%d session(s) still busy after %.0fs: ending them", len(ctx.sessions), grace
                )
            with trio.move_on_after(5):
                await ctx.writer.write([])  # everything queued before is stored now
        if self.main_scope is not None:
            self.main_scope.cancel()

    def _verifier(self) -> TokenVerifier:
        if self.verifier is not None:
            return self.verifier
        section = dict(self.settings.section("identity"))
        if not section.get("issuer"):
            raise UserError("[identity] issuer is not set: the gateway cannot verify tokens")
        try:
            return TokenVerifier(IdentitySettings.from_mapping(section))
        except IdentitySettingsError as exc:
            raise UserError(f"[identity]: {exc}") from None

    def _bootstrap_policy(self, store: EventStore, views: LiveViews) -> None:
        file = self.settings.section("policy").get("file")
        if not file or views.policy.document is not None:
            return
        path = Path(str(file))
        if not path.is_absolute() and self.settings.source is not None:
            path = self.settings.source.parent / path
        try:
            applied = apply_policy(store, path.read_text(), author=f"gateway:{self.settings.node}")
        except (OSError, PolicyError) as exc:
            raise UserError(f"[policy] file {path}: {exc}") from None
        logger.info("applied initial policy from %s (version %d)", path, applied.version)

    async def run(
        self, *, task_status: trio.TaskStatus[Started] = trio.TASK_STATUS_IGNORED
    ) -> None:
        settings = self.settings
        verifier = self._verifier()
        try:
            store = await trio.to_thread.run_sync(
                EventStore, dataclasses.replace(settings.store, autocheckpoint=False)
            )
        except StoreError as exc:
            raise UserError(str(exc)) from None
        try:
            vault = Vault.open(settings.data_dir, create=True)
        except VaultError as exc:
            raise UserError(str(exc)) from None
        try:
            await trio.to_thread.run_sync(verifier.warm)
        except IdentityProviderUnavailable as exc:
            logger.warning("identity provider not reachable yet (%s); will retry on demand", exc)
        writer = EventWriter(store)
        views = LiveViews(store)
        desk = ApprovalDesk(store=store, writer=writer, views=views, node=settings.node)
        guard = Guard(writer=writer, views=views, desk=desk)
        ctx = GatewayContext(
            node=settings.node,
            store=store,
            writer=writer,
            views=views,
            guard=guard,
            verifier=verifier,
            vault=vault,
            keyframes=KeyframeProcess(spill_dir=str(settings.data_dir)),
        )
        views.listeners.append(ctx.sessions.on_events)
        self.context = ctx
        started = Started(context=ctx)
        try:
            async with trio.open_nursery() as nursery:
                self.main_scope = nursery.cancel_scope
                connections = await nursery.start(_connection_nursery)
                await nursery.start(writer.run)
                await nursery.start(views.run)
                if views.policy.document is None:
                    await trio.to_thread.run_sync(self._bootstrap_policy, store, views)
                    await views.catch_up()
                await trio.to_thread.run_sync(close_abandoned_sessions, store, views, settings.node)
                nursery.start_soon(desk.sweep)
                nursery.start_soon(ctx.sessions.sweep)
                if store.backend == "sqlite":
                    nursery.start_soon(_checkpoints, store)
                nursery.start_soon(_dictionaries, store)
                for target in mysql_targets(settings):
                    proxy = MySQLProxy(target, ctx)
                    scope = trio.CancelScope()
                    self.listen_scopes.append(scope)
                    started.ports[target.name] = await nursery.start(
                        _listening, scope, proxy, connections
                    )
                ssh = ssh_targets(settings)
                if ssh:  # one asyncssh host (trio-asyncio loop) serves every SSH target
                    ports = await nursery.start(serve_ssh, ssh, ctx, settings.data_dir)
                    started.ports.update(ports)
                status_at = parse_address(
                    str(settings.section("gateway").get("status_listen", "127.0.0.1:0")),
                    what="[gateway] status_listen",
                )
                started.status_port = await nursery.start(
                    serve_status, ctx, started.ports, status_at, settings.data_dir
                )
                logger.info("gateway %s serving %s", settings.node, started.ports)
                task_status.started(started)
        finally:
            with trio.CancelScope(shield=True):
                assert ctx.keyframes is not None
                await trio.to_thread.run_sync(ctx.keyframes.close)
                await trio.to_thread.run_sync(store.close)


async def _connection_nursery(
    *, task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED
) -> None:
    """A nursery for connection tasks, apart from the listeners that accept them."""
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


async def _listening(
    scope: trio.CancelScope,
    proxy: MySQLProxy,
    connections: trio.Nursery,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await proxy.serve(handler_nursery=connections, task_status=task_status)


async def _dictionaries(
    store: EventStore, interval: float = 15.0, *, min_events: int = 2000
) -> None:
    """Compression dictionaries: the first one is trained here once the store holds
    ``min_events`` (until then events are stored as plain JSON); newer ones trained by
    ``wardgate store train`` or another node are picked up within ``interval``."""
    while True:
        await trio.sleep(interval)
        try:
            if store.compressor.current_dict_id == 0:
                trained = await trio.to_thread.run_sync(
                    functools.partial(store.train_dictionary, min_events=min_events)
                )
                if trained is not None:
                    logger.info("trained compression dictionary %d", trained)
            else:
                await trio.to_thread.run_sync(store.compressor.refresh)
        except (StoreError, ValueError) as exc:
            logger.warning("compression dictionary upkeep failed: %s", exc)


async def _checkpoints(store: EventStore, interval: float = 1.0) -> None:
    """WAL checkpoints in a thread, off the commit path."""
    while True:
        await trio.sleep(interval)
        try:
            await trio.to_thread.run_sync(store.checkpoint)
        except StoreError as exc:
            logger.warning("WAL checkpoint failed: %s", exc)
