"""Signing in to the web UI, the session cookie, CSRF, roles, and ``connector member set-password``."""

from __future__ import annotations

from sqlalchemy import select

from connector.cli import main
from connector.models import Member, Role
from tests.conftest import make_tenant
from tests.web.conftest import PASSWORD, add_member, csrf_token, set_password, sign_in


def test_a_visitor_is_sent_to_the_login_page(client, editor):
    response = client.get("/w/acme/segments")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=/w/acme/segments")


def test_member_signs_in_with_email_and_password_and_lands_in_a_workspace(client, editor):
    response = sign_in(client)
    assert response.status_code == 302
    assert client.get("/").location == "/w/acme/segments"
    page = client.get("/w/acme/segments")
    assert page.status_code == 200
    assert "admin@acme.example" in page.get_data(as_text=True)


def test_session_cookie_is_httponly_and_samesite_and_secure_over_https(app, client, editor):
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client()
    token = csrf_token(secure.get("/login", base_url="https://localhost").get_data(as_text=True))
    answer = secure.post(
        "/login",
        data={"email": "admin@acme.example", "password": PASSWORD, "csrf_token": token},
        base_url="https://localhost",
    )
    assert "Secure" in answer.headers["Set-Cookie"]


def test_a_wrong_password_or_unknown_email_is_refused_alike(client, editor):
    wrong = sign_in(client, password="not the password at all")
    unknown = sign_in(client, email="nobody@acme.example")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "do not match a member" in response.get_data(as_text=True)
    assert client.get("/w/acme/segments").status_code == 302


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(client, editor):
    sign_in(client)
    response = client.post("/w/acme/segments/new", data={"name": "Forged", "kind": "manual", "op": "save"})
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)
    assert "Forged" not in client.get("/w/acme/segments").get_data(as_text=True)


def test_login_itself_needs_the_csrf_token(client, editor):
    response = client.post("/login", data={"email": "admin@acme.example", "password": PASSWORD})
    assert response.status_code == 400


def test_a_viewer_sees_no_edit_buttons_and_a_forged_post_is_forbidden(client, database, tenant):
    add_member(database, tenant, "viewer@acme.example", Role.VIEWER)
    sign_in(client, "viewer@acme.example")
    page = client.get("/w/acme/segments").get_data(as_text=True)
    assert "New segment" not in page
    for form in ("/w/acme/segments/new", "/w/acme/destinations/new", "/w/acme/syncs/new"):
        assert client.get(form).status_code == 403
    token = csrf_token(page)
    response = client.post(
        "/w/acme/segments/new", data={"csrf_token": token, "name": "Nope", "kind": "manual", "op": "save"}
    )
    assert response.status_code == 403
    assert "Nope" not in client.get("/w/acme/segments").get_data(as_text=True)


def test_another_companys_workspace_is_not_found(client, database, editor):
    make_tenant(database, "globex")
    sign_in(client)
    assert client.get("/w/globex/segments").status_code == 404


def test_signing_out_ends_the_session(client, editor):
    sign_in(client)
    token = csrf_token(client.get("/w/acme/segments").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/w/acme/segments").status_code == 302


def test_a_new_password_signs_out_other_sessions(client, database, editor):
    sign_in(client)
    set_password(database, "admin@acme.example", "an entirely new password")
    assert client.get("/w/acme/segments").status_code == 302


def test_login_does_not_redirect_to_another_site(client, editor):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example/",
        data={"email": "admin@acme.example", "password": PASSWORD, "csrf_token": token},
    )
    assert response.location == "/"


def test_cli_sets_a_password_that_signs_in(app, database, settings, tenant):
    runner = app.test_cli_runner()
    result = runner.invoke(
        main,
        ["--database-url", settings.database_url, "member", "set-password", "--email", "admin@acme.example"],
        input="a password from the cli\na password from the cli\n",
    )
    assert result.exit_code == 0, result.output
    with database.session() as session:
        stored = session.scalar(select(Member.password_hash).where(Member.email == "admin@acme.example"))
    assert stored.startswith("$argon2id$") and "a password from the cli" not in stored
    assert sign_in(app.test_client(), password="a password from the cli").status_code == 302


def test_cli_refuses_a_short_password_and_an_unknown_member(app, settings, tenant):
    runner = app.test_cli_runner()
    base = ["--database-url", settings.database_url, "member", "set-password"]
    short = runner.invoke(main, [*base, "--email", "admin@acme.example", "--password", "short"])
    assert short.exit_code == 2 and "must be 10 to 1000 characters" in short.output
    unknown = runner.invoke(main, [*base, "--email", "ghost@acme.example", "--password", "long enough password"])
    assert unknown.exit_code == 2 and "no member" in unknown.output
