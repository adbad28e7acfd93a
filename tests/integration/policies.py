"""Policies used by the integration tests."""

BASIC = """
version = 1

[policy]
name = "it"
default = "deny"
unknown = "review"

[policy.review]
approver_groups = ["oncall"]
quorum = 1
expiry = "15m"

[[rule]]
name = "no-drop"
action = "deny"
protocol = "mysql"
statements = ["DDL:DROP", "DDL:TRUNCATE"]

[[rule]]
name = "hold-deletes-briefly"
action = "review"
protocol = "mysql"
statements = ["DELETE"]
approver_groups = ["oncall"]
expiry = "1s"

[[rule]]
name = "hold-writes"
action = "review"
protocol = "mysql"
statements = ["INSERT", "UPDATE", "DELETE", "REPLACE"]
approver_groups = ["oncall"]
expiry = "1m"

[[rule]]
name = "reads"
action = "allow"
protocol = "mysql"
statements = ["SELECT", "SHOW", "TRANSACTION", "SESSION", "DDL:CREATE"]
"""
