"""Settings, read once from the environment.

Every setting has a default that works on a laptop: an SQLite file in the working directory, a secret key
derived for development. Production sets ``CONNECTOR_DATABASE_URL`` and ``CONNECTOR_SECRET_KEY``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from connector.operations.settings import OperationsSettings

DEFAULT_DATABASE_URL = "sqlite:///connector.db"
# A fixed development key: fine for the demo, refused when CONNECTOR_ENV=production.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = DEVELOPMENT_SECRET_KEY
    environment: str = "development"
    # Run the scheduler inside the web process (the single-machine default).
    scheduler_enabled: bool = False
    extra: dict = field(default_factory=dict)
    # Distributed execution, alerts, logs: see ``connector.operations.settings``.
    operations: OperationsSettings = field(default_factory=OperationsSettings)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        values = {
            "database_url": os.environ.get("CONNECTOR_DATABASE_URL", DEFAULT_DATABASE_URL),
            "secret_key": os.environ.get("CONNECTOR_SECRET_KEY", DEVELOPMENT_SECRET_KEY),
            "environment": os.environ.get("CONNECTOR_ENV", "development"),
            "scheduler_enabled": os.environ.get("CONNECTOR_SCHEDULER", "0") in ("1", "true", "yes"),
            "operations": OperationsSettings.from_env(os.environ),
        }
        values.update(overrides)
        settings = cls(**values)
        if settings.environment == "production" and settings.secret_key == DEVELOPMENT_SECRET_KEY:
            raise RuntimeError("CONNECTOR_SECRET_KEY must be set when CONNECTOR_ENV=production")
        return settings
