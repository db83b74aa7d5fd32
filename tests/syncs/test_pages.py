"""Keyset pages of a run's reads: a short first page (the first batch leaves early), then full pages to the end."""

from __future__ import annotations

from connector.syncs.planner import pages


def test_pages_start_short_then_read_full_pages_until_one_comes_back_short():
    rows = list(range(1, 2_346))
    asked: list[tuple[int, int]] = []

    def fetch(after: int, limit: int) -> list[int]:
        asked.append((after, limit))
        return [r for r in rows if r > after][:limit]

    assert list(pages(fetch, key=lambda r: r, limit=1000)) == rows
    assert asked == [(0, 100), (100, 1000), (1100, 1000), (2100, 1000)]


def test_a_first_page_that_comes_back_short_is_the_last():
    asked = []

    def fetch(after: int, limit: int) -> list[int]:
        asked.append(limit)
        return [1, 2, 3]

    assert list(pages(fetch, key=lambda r: r, limit=1000)) == [1, 2, 3]
    assert asked == [100]
