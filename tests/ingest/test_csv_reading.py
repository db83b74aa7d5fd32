"""CSV imports as people make them: column types inferred from the first rows and reported, files separated by
``;`` or saved in Windows-1252, junk under ``email`` named as not an email, and files no encoding fits refused
with the line."""

from __future__ import annotations

from sqlalchemy import select

from connector.models import User


def upload(client, tenant, kind: str, data: bytes, query: str = ""):
    return client.post(
        tenant.url(f"/imports/{kind}") + query, headers=tenant.headers, data=data, content_type="text/csv"
    )


def attributes(database) -> dict[str, dict]:
    with database.session() as session:
        return {u.external_id: u.attributes for u in session.scalars(select(User))}


CSV = (
    "external_id,salary,vip,signed_up,last_seen,zip,phone,note\n"
    "u1,30000,true,2024-01-05,2024-02-01T10:00:00+00:00,02134,+15550100,hello\n"
    "u2,41250.5,no,2023-12-31,2024-02-02T11:30:00Z,10001,+15550101,12\n"
    "u3,,yes,,,,,\n"
)


def test_untyped_columns_get_the_type_their_values_show_and_the_report_says_so(client, tenant, database):
    response = upload(client, tenant, "users", CSV.encode())
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["inferred_types"] == {
        "salary": "number",
        "vip": "boolean",
        "signed_up": "date",
        "last_seen": "datetime",
    }
    assert (report["encoding"], report["delimiter"]) == ("utf-8-sig", ",")
    got = attributes(database)
    assert got["u1"]["salary"] == 30000 and got["u2"]["salary"] == 41250.5
    assert (got["u1"]["vip"], got["u2"]["vip"], got["u3"]["vip"]) == (True, False, True)
    assert got["u1"]["signed_up"] == "2024-01-05"
    assert got["u2"]["last_seen"] == "2024-02-02T11:30:00+00:00"
    # Leading zeros, phone numbers and mixed columns stay text.
    assert (got["u1"]["zip"], got["u1"]["phone"], got["u2"]["note"]) == ("02134", "+15550100", "12")


def test_declared_types_win_and_inference_can_be_turned_off(client, tenant, database):
    declared = upload(client, tenant, "users", CSV.encode(), "?types=salary:string")
    assert declared.get_json()["inferred_types"].get("salary") is None
    assert attributes(database)["u1"]["salary"] == "30000"

    plain = upload(client, tenant, "users", b"external_id,score\nu9,12\n", "?infer=false")
    assert plain.get_json()["inferred_types"] == {}
    assert attributes(database)["u9"]["score"] == "12"


def test_a_later_cell_that_does_not_fit_the_inferred_type_is_kept_as_text(client, tenant, database):
    rows = "".join(f"u{i},{i}\n" for i in range(5)) + "u5,n/a\n"
    response = upload(client, tenant, "users", ("external_id,score\n" + rows).encode(), "")
    report = response.get_json()
    assert report["failed"] == 0
    assert report["kept_as_text"] == {} and report["inferred_types"] == {}  # n/a is in the sample: text

    many = "".join(f"v{i},{i}\n" for i in range(1000)) + "v1000,n/a\n"
    report = upload(client, tenant, "users", ("external_id,score\n" + many).encode()).get_json()
    assert report["inferred_types"] == {"score": "number"}
    assert report["kept_as_text"] == {"score": 1} and report["failed"] == 0
    assert attributes(database)["v1000"]["score"] == "n/a"


def test_semicolon_separated_files_are_read_as_such(client, tenant, database):
    response = upload(client, tenant, "users", b'external_id;email;plan\nu1;a@example.com;"pro; yearly"\n')
    report = response.get_json()
    assert report["delimiter"] == ";" and report["failed"] == 0, report
    assert attributes(database)["u1"] == {"plan": "pro; yearly"}


def test_a_windows_1252_file_is_decoded(client, tenant, database):
    data = "external_id;name;city\nu1;José;Zürich\nu2;Renée;Köln\n".encode("cp1252")
    report = upload(client, tenant, "users", data).get_json()
    assert report["failed"] == 0 and report["encoding"] != "utf-8-sig"
    assert attributes(database)["u2"] == {"name": "Renée", "city": "Köln"}


def test_a_file_no_encoding_fits_is_refused_with_its_line(client, tenant, database):
    data = b"external_id,name\nu1,ok\nu2,\x81\x8d\x8f\x90\x9d\x00\xff\n"
    response = upload(client, tenant, "users", data)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    error = response.get_json()["errors"][0]
    assert error["field"] == "body.file"
    assert "line 3" in error["reason"] and "UTF-8" in error["reason"]
    assert attributes(database) == {}


def test_junk_under_email_is_not_a_valid_email(client, tenant, database):
    report = upload(client, tenant, "users", b"email,plan\nnot-an-email,pro\nok@example.com,free\n").get_json()
    assert report["failed"] == 1
    assert report["errors"][0]["column"] == "email"
    assert "not a valid email" in report["errors"][0]["reason"]


def test_junk_under_email_in_a_list_upload_is_not_a_valid_email(client, tenant, database):
    segment = client.post(
        tenant.url("/segments"), headers=tenant.headers, json={"name": "Webinar", "kind": "manual"}
    ).get_json()
    response = client.post(
        tenant.url(f"/segments/{segment['id']}/members/upload"),
        headers=tenant.headers,
        data=b"email\nnot-an-email\nnobody@example.com\n",
        content_type="text/csv",
    )
    body = response.get_json()
    assert response.status_code == 200, body
    reasons = {item["value"]: item["reason"] for item in body["unknown"]}
    assert reasons["not-an-email"] == "email is not a valid email address"
    assert reasons["nobody@example.com"].startswith("no user with this email")
