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

``users_by_kind`` / ``accounts_by_kind`` say which subjects changed in each way, so a segment reading only
``event:purchase`` is re-evaluated for the buyers of a batch, not for everyone the batch mentions. A kind recorded
without them (set directly on ``kinds``) stands for every changed subject.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChangeSet:
    user_ids: set[int] = field(default_factory=set)
    account_ids: set[int] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    users_by_kind: dict[str, set[int]] = field(default_factory=dict)
    accounts_by_kind: dict[str, set[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.account_ids)

    def add_users(self, ids, *kinds: str) -> None:
        """Record that these users changed in these ways; no users, no change (the kinds are not recorded)."""
        ids = set(ids)
        if ids:
            self.user_ids |= ids
            self.kinds.update(kinds)
            for kind in kinds:
                self.users_by_kind.setdefault(kind, set()).update(ids)

    def add_accounts(self, ids, *kinds: str) -> None:
        ids = set(ids)
        if ids:
            self.account_ids |= ids
            self.kinds.update(kinds)
            for kind in kinds:
                self.accounts_by_kind.setdefault(kind, set()).update(ids)

    def merge(self, other: ChangeSet) -> ChangeSet:
        self.user_ids |= other.user_ids
        self.account_ids |= other.account_ids
        self.kinds |= other.kinds
        pairs = ((self.users_by_kind, other.users_by_kind), (self.accounts_by_kind, other.accounts_by_kind))
        for mine, theirs in pairs:
            for kind, ids in theirs.items():
                mine.setdefault(kind, set()).update(ids)
        return self

    def users_changed(self, kinds) -> set[int]:
        """The users that changed in any of these ways."""
        return self._changed(kinds, self.users_by_kind, self.user_ids)

    def accounts_changed(self, kinds) -> set[int]:
        """The accounts that changed in any of these ways."""
        return self._changed(kinds, self.accounts_by_kind, self.account_ids)

    def _changed(self, kinds, by_kind: dict[str, set[int]], everyone: set[int]) -> set[int]:
        found: set[int] = set()
        for kind in set(kinds) & self.kinds:
            ids = by_kind.get(kind)
            if ids is None and kind not in self.users_by_kind and kind not in self.accounts_by_kind:
                return set(everyone)  # recorded without subjects: every changed subject
            found |= ids or set()
        return found
