"""Sub-commands of the `wardgate` CLI, one module per group.

Each module exposes ``register(subparsers)`` which adds its parser(s) and sets ``func`` on
them; ``func(args)`` returns the process exit code. The list below is the only place that
names them, so adding a command group is one new module and one line.
"""

COMMAND_MODULES: tuple[str, ...] = (
    "gateway.commands.store",
    "gateway.commands.vault",
    "gateway.commands.identity",
    "gateway.commands.serve",
    "gateway.commands.policy",
    "gateway.commands.approvals",
    "gateway.commands.demo",
    "gateway.commands.status",
    "gateway.commands.export",
    "gateway.commands.tui",
    "gateway.commands.replay",
)
