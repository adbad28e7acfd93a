"""Policy: the pure decision engine, the SQL and shell classifiers, policy files."""
