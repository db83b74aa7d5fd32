"""Small helpers shared by the ingestion and read tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from connector.db import Database


def post_batch(client, tenant, endpoint: str, items: list[dict[str, Any]], partial: bool = False, headers=None):
    url = tenant.url(f"/{endpoint}") + ("?partial=true" if partial else "")
    return client.post(url, headers=headers or tenant.headers, json={"batch": items})


def ok(response) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def count(database: Database, model, *where) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def rows(database: Database, model, *where, order_by=None) -> list[Any]:
    with database.session() as session:
        query = select(model).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        return list(session.scalars(query))


def counts(database: Database, *models) -> dict[str, int]:
    return {model.__tablename__: count(database, model) for model in models}
