"""Ingestion: what the API, CSV imports and the CLI write about people and accounts, and how it is read back.

``users`` (identify), ``accounts`` (group), ``events`` (track, page), ``devices`` and ``objects`` take batches of
items validated one by one (``items``, ``batches``) and write them set-based, a few statements a batch whatever its
size (``subjects``, ``tags``, ``statements``). Each returns a ``ChangeSet`` for the segment engine. ``imports``
streams CSV files through the same services; ``directory`` lists and looks up users and accounts.

Services receive a session and never commit; the entry point that opened it does.
"""
