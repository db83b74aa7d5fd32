"""People (users) and companies (accounts), and everything known about them.

Every table carries ``workspace_id`` so every query can be scoped to one workspace; indexes lead with it or with
the subject id, which is what the segment compiler filters and joins on.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from connector.models.base import Base, BigId, str_enum, utcnow
from connector.models.changes import change_seq_column


class SubjectType(enum.StrEnum):
    USER = "user"
    ACCOUNT = "account"


class EventKind(enum.StrEnum):
    TRACK = "track"
    PAGE = "page"


class Platform(enum.StrEnum):
    IOS = "ios"
    ANDROID = "android"
    WEB = "web"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        UniqueConstraint("workspace_id", "email"),
        Index("ix_users_workspace_change_seq", "workspace_id", "change_seq"),
        Index("ix_users_workspace_created_at", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No index of its own: the unique constraints and indexes above lead with it (migration 0020).
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    # email, sms, push, whatsapp or in_app (``connector.models.automation.Channel``), set through identify.
    default_channel: Mapped[str | None] = mapped_column(String(20))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    change_seq: Mapped[int] = change_seq_column()


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_accounts_workspace_domain", "workspace_id", "domain"),
        Index("ix_accounts_workspace_change_seq", "workspace_id", "change_seq"),
        Index("ix_accounts_workspace_created_at", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    change_seq: Mapped[int] = change_seq_column()


class UserTag(Base):
    __tablename__ = "user_tags"
    __table_args__ = (Index(None, "workspace_id", "tag"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))


class AccountTag(Base):
    __tablename__ = "account_tags"
    __table_args__ = (Index(None, "workspace_id", "tag"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))


class AccountUser(Base):
    """Which users belong to which accounts (many-to-many)."""

    __tablename__ = "account_users"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class Event(Base):
    """Something a user did; a page view is an event of kind ``page`` with a URL."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "message_id"),
        # "did NAME at least N times in the last 7 days" for some users: seek by user, name, time.
        Index("ix_events_user_name_time", "user_id", "name", "occurred_at"),
        Index("ix_events_user_kind_time", "user_id", "kind", "occurred_at"),
        # Full refresh of one event condition over a workspace: seek by name and time.
        Index("ix_events_workspace_name_time", "workspace_id", "name", "occurred_at"),
        # Window edges of page views (``segments.edges``): page views only, so the planner never takes it for an
        # index of every event's time when evaluating a few users (migration 0012).
        Index(
            "ix_events_page_time",
            "workspace_id",
            "occurred_at",
            postgresql_where=text("kind = 'page'"),
            sqlite_where=text("kind = 'page'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind, 10), default=EventKind.TRACK)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The client's id for this event: re-sending a batch is harmless.
    message_id: Mapped[str] = mapped_column(String(255))


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("workspace_id", "platform", "vendor_device_id"),
        Index("ix_devices_workspace_last_seen", "workspace_id", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[Platform] = mapped_column(str_enum(Platform, 10))
    # IDFV on iOS, Android ID on Android, a browser id on the web.
    vendor_device_id: Mapped[str] = mapped_column(String(255))
    push_token: Mapped[str | None] = mapped_column(Text)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ObjectType(Base):
    """A custom object type of a workspace (orders, subscriptions…).

    Records link to users/accounts directly (``user_id`` / ``account_id`` given at ingestion) or through a field
    whose value is a user's or account's external id (``user_link_field`` / ``account_link_field``).
    """

    __tablename__ = "object_types"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    user_link_field: Mapped[str | None] = mapped_column(String(100))
    account_link_field: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ObjectRecord(Base):
    __tablename__ = "objects"
    __table_args__ = (UniqueConstraint("object_type_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    object_type_id: Mapped[int] = mapped_column(ForeignKey("object_types.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
