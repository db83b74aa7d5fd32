"""The file destination: JSON Lines replay to the current state; CSV columns are fixed when the file is made."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from connector.destinations.base import ConfigError, FieldSpec, OutboundRecord, WritePlan
from connector.destinations.file import FileDestination

PLAN = WritePlan("contacts", "email", (FieldSpec("firstname"), FieldSpec("segments", "multi_select")))


def test_jsonl_lines_carry_the_operation(tmp_path: Path) -> None:
    destination = FileDestination({"directory": str(tmp_path)})
    destination.write(PLAN, [OutboundRecord("1", "a@example.com", {"firstname": "Ada", "segments": ["VIP"]})])
    destination.remove(PLAN, [OutboundRecord("1", "a@example.com")])
    lines = [json.loads(line) for line in (tmp_path / "contacts.jsonl").read_text().splitlines()]
    assert [(line["op"], line["key"], line["identity"]) for line in lines] == [
        ("upsert", "1", "a@example.com"),
        ("remove", "1", "a@example.com"),
    ]
    assert lines[0]["properties"] == {"firstname": "Ada", "segments": ["VIP"]} and lines[0]["at"].endswith("Z")


def test_csv_header_is_fixed_by_the_plan_and_first_batch(tmp_path: Path) -> None:
    destination = FileDestination({"directory": str(tmp_path), "format": "csv"})
    first = [OutboundRecord("1", "a@example.com", {"firstname": "Ada", "segments": ["VIP", "EU"], "active": True})]
    assert destination.write(PLAN, first)[0].status == "ok"
    later = [
        OutboundRecord("2", "b@example.com", {"firstname": "Grace"}),
        OutboundRecord("3", "c@example.com", {"firstname": "Kim", "country": "KR"}),
    ]
    results = {r.key: r for r in destination.write(PLAN, later)}
    assert results["2"].status == "ok"
    assert results["3"].status == "rejected" and "country" in results["3"].reason
    rows = list(csv.reader((tmp_path / "contacts.csv").open()))
    assert rows == [
        ["op", "key", "identity", "firstname", "segments", "active"],
        ["upsert", "1", "a@example.com", "Ada", "VIP;EU", "true"],
        ["upsert", "2", "b@example.com", "Grace", "", ""],
    ]


def test_object_names_that_are_not_plain_file_names_are_refused(tmp_path: Path) -> None:
    destination = FileDestination({"directory": str(tmp_path)})
    with pytest.raises(ConfigError):
        destination.write(WritePlan("../escape", "email"), [OutboundRecord("1", "a@example.com")])


def test_check_creates_the_directory(tmp_path: Path) -> None:
    FileDestination({"directory": str(tmp_path / "new" / "dir")}).check()
    assert (tmp_path / "new" / "dir").is_dir()
