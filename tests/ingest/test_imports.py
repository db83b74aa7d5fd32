import io

from connector.changes import ChangeSet
from connector.cli import main
from connector.ingest.imports import import_users
from connector.models import Account, AccountTag, Role, User, UserTag
from tests.conftest import make_tenant
from tests.ingest.helpers import count, rows

USERS_CSV = """external_id,email,plan,lifetime_value,signed_up,tags
u1,ada@example.com,pro,120.5,2024-01-31,vip;beta
u2,NOT-AN-EMAIL,free,0,2024-02-01,
u3,,team,abc,2024-02-02,
,bob@example.com,free,7,2024-13-01,
u4,,free,,,
"""


def post_csv(client, tenant, kind, text, query="", headers=None, as_file=True):
    url = tenant.url(f"/imports/{kind}") + query
    if as_file:
        return client.post(
            url,
            headers=headers or tenant.headers,
            data={"file": (io.BytesIO(text.encode()), "people.csv")},
            content_type="multipart/form-data",
        )
    return client.post(url, headers=headers or tenant.headers, data=text.encode(), content_type="text/csv")


def test_user_import_writes_good_rows_and_reports_bad_ones(client, database, tenant):
    response = post_csv(client, tenant, "users", USERS_CSV, "?types=lifetime_value:number,signed_up:date")
    assert response.status_code == 200, response.json
    report = response.json
    assert (report["rows"], report["created"], report["updated"], report["failed"]) == (5, 2, 0, 3)
    assert report["errors_truncated"] is False
    assert [(e["row"], e["column"]) for e in report["errors"]] == [
        (3, "email"),
        (4, "lifetime_value"),
        (5, "signed_up"),
    ]
    users = {u.external_id: u for u in rows(database, User)}
    assert set(users) == {"u1", "u4"}
    assert users["u1"].email == "ada@example.com"
    assert users["u1"].attributes == {"plan": "pro", "lifetime_value": 120.5, "signed_up": "2024-01-31"}
    assert users["u4"].attributes == {"plan": "free"}  # empty cells leave attributes as they are
    assert sorted(t.tag for t in rows(database, UserTag)) == ["beta", "vip"]


def test_import_merges_into_existing_users_and_counts_updates(client, database, tenant):
    post_csv(client, tenant, "users", "external_id,plan,seats\nu1,free,3\n")
    report = post_csv(client, tenant, "users", "external_id,plan\nu1,pro\nu2,free\n", as_file=False).json
    assert (report["created"], report["updated"], report["failed"]) == (1, 1, 0)
    (u1,) = rows(database, User, User.external_id == "u1")
    assert u1.attributes == {"plan": "pro", "seats": 3}  # a number column is inferred as one


def test_account_import(client, database, tenant):
    report = post_csv(
        client,
        tenant,
        "accounts",
        "external_id,domain,name,tier,tags\nacme,ACME.com,Acme,gold,big;eu\nbad,not a domain,X,,\n,x.com,No id,,\n",
    ).json
    assert (report["rows"], report["created"], report["failed"]) == (3, 1, 2)
    assert [e["column"] for e in report["errors"]] == ["domain", "external_id"]
    (acme,) = rows(database, Account)
    assert (acme.domain, acme.name, acme.attributes) == ("acme.com", "Acme", {"tier": "gold"})
    assert sorted(t.tag for t in rows(database, AccountTag)) == ["big", "eu"]


def test_files_that_cannot_be_imported_are_refused_whole(client, database, tenant):
    cases = [
        ("", "body.file"),
        ("plan,seats\npro,1\n", "body.file"),  # no identity column
        ("external_id,plan,plan\nu1,a,b\n", "body.file"),
        ("external_id,,plan\nu1,a,b\n", "body.file"),
    ]
    for text, field in cases:
        response = post_csv(client, tenant, "users", text)
        assert response.status_code == 422, text
        assert response.content_type == "application/problem+json"
        assert response.json["errors"][0]["field"] == field
    bad_types = post_csv(client, tenant, "users", "external_id,plan\nu1,a\n", "?types=plan:money")
    assert bad_types.json["errors"][0]["field"] == "query.types"
    unknown_column = post_csv(client, tenant, "users", "external_id,plan\nu1,a\n", "?types=seats:number")
    assert unknown_column.status_code == 422
    not_text = client.post(
        tenant.url("/imports/users"),
        headers=tenant.headers,
        data=b"external_id;name\nu1;\x81\x8d\x8f\x90\x9d\x00\xff\n",
        content_type="text/csv",
    )
    assert not_text.status_code == 422
    assert "line 2" in not_text.json["errors"][0]["reason"]
    no_file = client.post(tenant.url("/imports/users"), headers=tenant.headers, data={"other": "x"})
    assert no_file.status_code == 422
    assert count(database, User) == 0


def test_rows_with_too_many_cells_or_broken_quoting_are_row_errors(client, database, tenant):
    report = post_csv(client, tenant, "users", 'external_id,plan\nu1,a,extra\nu2,b\nu3,"c\x00"\n').json
    assert report["rows"] == 3
    assert report["failed"] == 2
    assert [e["row"] for e in report["errors"]] == [2, 4]
    assert [u.external_id for u in rows(database, User)] == ["u2"]


def test_a_large_file_is_streamed_in_chunks(database, tenant):
    total = 20_000
    lines = ["external_id,email,score,tags"]
    lines += [f"user-{i},user-{i}@example.com,{i % 100},{'odd' if i % 2 else 'even'}" for i in range(total)]
    lines.append("broken,not-an-email,1,")
    data = ("\n".join(lines) + "\n").encode()
    chunks = []

    class Reads(io.RawIOBase):
        """A byte stream that records how much each read asks for, to show the file is not read at once."""

        def __init__(self) -> None:
            self.inner = io.BytesIO(data)
            self.largest = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            self.largest = max(self.largest, len(buffer))
            return self.inner.readinto(buffer)

    stream = Reads()
    with database.session() as session:
        report = import_users(
            session,
            tenant.workspace_id,
            io.BufferedReader(stream),
            types={"score": "integer"},
            on_chunk=lambda changes: chunks.append(changes),
        )
    assert (report.rows, report.created, report.failed) == (total + 1, total, 1)
    # 1,000 rows a chunk; the last chunk (the broken row alone) changed nothing, so it has no changes to apply.
    assert len(chunks) == total // 1000
    assert all(isinstance(c, ChangeSet) and "subject" in c.kinds and len(c.user_ids) == 1000 for c in chunks)
    assert stream.largest < len(data) / 10
    assert count(database, User) == total
    assert count(database, UserTag, UserTag.tag == "odd") == total // 2


def test_error_list_is_capped_with_counts(client, database, tenant):
    text = "email\n" + "bad\n" * 1100
    report = post_csv(client, tenant, "users", text).json
    assert report["failed"] == 1100
    assert len(report["errors"]) == 1000
    assert report["errors_truncated"] is True


def test_imports_are_walled_and_need_an_editor(client, database, tenant, other_tenant):
    assert post_csv(client, other_tenant, "users", "external_id\nu1\n", headers=tenant.headers).status_code == 404
    viewer = make_tenant(database, "initech", role=Role.VIEWER)
    assert post_csv(client, viewer, "accounts", "external_id\na1\n").status_code == 403
    assert count(database, User) + count(database, Account) == 0


def test_cli_imports_users_and_prints_a_summary(runner, database, tenant, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("external_id,email,ltv\nu1,a@x.io,5\nu2,bad,6\n")
    result = runner.invoke(
        main,
        ["--database-url", database.url, "import", "users", str(path), "--workspace", tenant.workspace,
         "--types", "ltv:number", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 rows: 1 users created, 0 updated, 1 rows failed" in result.output
    assert "line 3 (email)" in result.output
    (user,) = rows(database, User)
    assert user.attributes == {"ltv": 5}

    accounts = tmp_path / "accounts.csv"
    accounts.write_text("external_id,name\nacme,Acme\n")
    result = runner.invoke(
        main, ["--database-url", database.url, "import", "accounts", str(accounts), "--workspace", tenant.workspace]
    )
    assert result.exit_code == 0, result.output
    assert "1 accounts created" in result.output


def test_cli_refuses_unknown_workspaces_and_bad_files(runner, database, tenant, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("plan\npro\n")
    result = runner.invoke(main, ["--database-url", database.url, "import", "users", str(path), "--workspace", "nope"])
    assert result.exit_code != 0 and "no workspace" in result.output
    result = runner.invoke(
        main, ["--database-url", database.url, "import", "users", str(path), "--workspace", tenant.workspace]
    )
    assert result.exit_code != 0 and "external_id or email" in result.output
