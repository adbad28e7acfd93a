"""Applying a policy file as an event: validate, diff against the current one, store.

Shared by ``wardgate policy apply`` and the gateway's first start (``[policy] file``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from events.domain import POLICY_ID
from events.domain import Policy as PolicyStream
from events.store import EventStore
from gateway.policy import Policy, PolicyDiff, diff_policies, load_policy


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    version: int
    digest: str
    diff: PolicyDiff
    changed: bool


def digest_of(document: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def current_policy(store: EventStore) -> tuple[PolicyStream, Policy | None]:
    stream = store.load(PolicyStream, POLICY_ID) or PolicyStream(POLICY_ID)
    policy = Policy.from_dict(stream.document) if stream.document is not None else None
    return stream, policy


def apply_policy(store: EventStore, source: str, *, author: str) -> Applied:
    """Store ``source`` as the current policy; raises ``PolicyError`` if it is invalid and
    ``ConcurrencyConflict`` if someone applied another policy at the same moment."""
    new = load_policy(source)
    document = new.to_dict()
    digest = digest_of(document)
    stream, old = current_policy(store)
    diff = diff_policies(old if old is not None else Policy(rules=()), new)
    if digest == stream.digest:
        return Applied(version=stream.version, digest=digest, diff=diff, changed=False)
    event = stream.apply_change(
        source=source,
        document=document,
        diff=diff.to_dict(),
        digest=digest,
        actor=author,
        at=time.time(),
    )
    store.append([event])
    return Applied(version=event.originator_version, digest=digest, diff=diff, changed=True)
