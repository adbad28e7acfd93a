"""The MySQL protocol: sans-IO codec (constants, wire, framing, packets, rows, auth, states,
tracker, connection objects). See ``connection.py`` for the entry points."""
