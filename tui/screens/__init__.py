"""The console's screens, one per file; each reads snapshots and calls ConsoleData actions."""
