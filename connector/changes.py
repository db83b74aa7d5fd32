"""What an ingestion changed, so the segment engine re-evaluates only what can depend on it.

Ingestion services return a ``ChangeSet``; the entry point hands it to ``connector.segments.incremental`` in the
same transaction. ``kinds`` names the data that changed:

=====================  =====================================================
``subject``            subjects were created (every segment of that type may now include them)
``attribute``          user/account attributes, email, domain or name changed
``tag``                tags changed
``event:<name>``       track events named <name> were recorded
``page``               page views were recorded
``device``             devices were added or seen
``object:<type>``      custom object records of type <type> (its name) changed
``account_link``       users joined or left accounts
``message``            message events (sent, opened, …) were recorded for users
=====================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChangeSet:
    user_ids: set[int] = field(default_factory=set)
    account_ids: set[int] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.account_ids)

    def add_users(self, ids, *kinds: str) -> None:
        """Record that these users changed in these ways; no users, no change (the kinds are not recorded)."""
        ids = set(ids)
        if ids:
            self.user_ids |= ids
            self.kinds.update(kinds)

    def add_accounts(self, ids, *kinds: str) -> None:
        ids = set(ids)
        if ids:
            self.account_ids |= ids
            self.kinds.update(kinds)

    def merge(self, other: ChangeSet) -> ChangeSet:
        self.user_ids |= other.user_ids
        self.account_ids |= other.account_ids
        self.kinds |= other.kinds
        return self
