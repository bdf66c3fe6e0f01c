"""Password reset by email (issue 13): one answer for every address, a single-use link that expires,
kept hashed, a new password that ends every session, and rate limits per address and per account.

The mail goes through the test SMTP sink (tests/servers.py); the link is read from the received mail.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re

import pytest

from inbox.web.admin import token_hash
from tests.test_web_auth import PASSWORD, csrf_token, login, make_agent, signed_in, web_store  # noqa: F401

SAME_ANSWER = "If that address has an account, a link is on its way."
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def mail_app(app_config, smtp_server):
    app_config["base_url"] = "http://mainland.test"
    app_config["channels"] = {
        "mail": {"kind": "imap", "host": "127.0.0.1", "username": "support@mainland.test", "password": "x",
                 "address": "support@mainland.test", "security": "none", "smtp_host": smtp_server.host,
                 "smtp_port": smtp_server.port, "smtp_security": "none"},
    }
    from inbox import create_app

    app = create_app(app_config)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def db(mail_app):
    store = mail_app.extensions["mainland"].open_store()
    yield store
    store.close()


def ask_for_link(client, address, ip="10.1.0.1"):
    token = csrf_token(client, "/password/forgot")
    return client.post("/password/forgot", data={"email": address, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def received(smtp_server, count):
    return [email.message_from_bytes(m.content, policy=email.policy.default) for m in smtp_server.wait_for(count)]


def link_path(mail) -> str:
    match = re.search(r"http://mainland\.test(/password/reset/[A-Za-z0-9_-]+)", mail.get_content())
    assert match, mail.get_content()
    return match.group(1)


def set_password(client, path, password=NEW_PASSWORD, repeat=None):
    return client.post(path, data={"password": password, "repeat_password": repeat or password,
                                   "csrf_token": csrf_token(client, "/password/forgot")})


def test_the_sign_in_page_links_to_the_reset_form(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/password/forgot"' in page and "Forgot your password?" in page
    form = client.get("/password/forgot").get_data(as_text=True)
    assert '<label for="email">' in form and 'id="email"' in form


def test_the_whole_reset_through_the_mail(mail_app, db, smtp_server, frozen_clock):
    agent = make_agent(db, email="ann@example.org")
    elsewhere = mail_app.test_client()
    login(elsewhere)
    assert signed_in(elsewhere)

    client = mail_app.test_client()
    response = ask_for_link(client, "Ann@Example.org ")
    assert response.status_code == 200 and SAME_ANSWER in response.get_data(as_text=True)
    [mail] = received(smtp_server, 1)
    assert mail["To"] == "ann@example.org" and mail["Subject"] == "Reset your Mainland password"
    assert mail["Auto-Submitted"] == "auto-generated"
    path = link_path(mail)

    page = client.get(path)
    assert page.status_code == 200 and "ann@example.org" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    done = set_password(client, path)
    assert done.status_code == 302 and done.headers["Location"] == "/login"

    assert not signed_in(elsewhere), "the other sessions ended"
    assert login(client, password=PASSWORD).status_code == 401, "the old password no longer works"
    assert login(client, password=NEW_PASSWORD).status_code == 302
    actions = [e["action"] for e in db.audit_entries(object_type="agent", object_id=agent["id"])]
    assert "password_reset_requested" in actions and "password_reset" in actions


def test_the_token_is_kept_hashed(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    ask_for_link(mail_app.test_client(), "ann@example.org")
    token = link_path(received(smtp_server, 1)[0]).rsplit("/", 1)[1]
    stored = [r[0] for r in db.execute("SELECT token_hash FROM password_resets")]
    assert stored == [token_hash(token)] and token not in stored


def test_a_link_works_once(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    client = mail_app.test_client()
    ask_for_link(client, "ann@example.org")
    path = link_path(received(smtp_server, 1)[0])
    assert set_password(client, path).status_code == 302
    assert client.get(path).status_code == 404
    again = set_password(client, path, password="yet another passphrase")
    assert again.status_code == 404 and "This link does not work" in again.get_data(as_text=True)
    assert login(client, password=NEW_PASSWORD).status_code == 302


def test_a_link_expires_after_30_minutes(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    client = mail_app.test_client()
    ask_for_link(client, "ann@example.org")
    path = link_path(received(smtp_server, 1)[0])
    frozen_clock.advance(dt.timedelta(minutes=29))
    assert client.get(path).status_code == 200
    frozen_clock.advance(dt.timedelta(minutes=1, seconds=1))
    assert client.get(path).status_code == 404
    assert set_password(client, path).status_code == 404
    assert login(client, password=PASSWORD).status_code == 302, "the password is unchanged"


def test_a_newer_link_ends_the_earlier_one(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    client = mail_app.test_client()
    ask_for_link(client, "ann@example.org")
    first = link_path(received(smtp_server, 1)[0])
    ask_for_link(client, "ann@example.org")
    second = link_path(received(smtp_server, 2)[1])
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


def test_a_wrong_or_altered_token_is_refused(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    client = mail_app.test_client()
    ask_for_link(client, "ann@example.org")
    path = link_path(received(smtp_server, 1)[0])
    for wrong in (path.swapcase(), path[:-1], path + "x", "/password/reset/" + "a" * 43, "/password/reset/" + "a" * 200):
        assert client.get(wrong).status_code == 404, wrong
        assert set_password(client, wrong).status_code == 404, wrong
    assert client.get(path).status_code == 200, "the real link still works"


def test_the_new_password_follows_the_usual_rules(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    client = mail_app.test_client()
    ask_for_link(client, "ann@example.org")
    path = link_path(received(smtp_server, 1)[0])
    short = set_password(client, path, password="short")
    assert short.status_code == 400 and "Use at least 8 characters." in short.get_data(as_text=True)
    differ = set_password(client, path, repeat="something else entirely")
    assert differ.status_code == 400 and "The two passwords differ." in differ.get_data(as_text=True)
    assert client.get(path).status_code == 200, "a refused password does not use up the link"


def test_an_unknown_or_disabled_address_gets_the_same_page_and_no_mail(mail_app, db, smtp_server, frozen_clock):
    make_agent(db, email="ann@example.org")
    gone = make_agent(db, email="gone@example.org")
    db.set_agent_active(gone["id"], False)

    def answer(address, ip):
        response = ask_for_link(mail_app.test_client(), address, ip=ip)
        body = re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True))
        return response.status_code, body

    known = answer("ann@example.org", "10.2.0.1")
    assert known == answer("nobody@example.org", "10.2.0.2") == answer("gone@example.org", "10.2.0.3")
    assert SAME_ANSWER in known[1]
    # The known address's mail arrives; nothing was sent for the other two.
    [mail] = received(smtp_server, 1)
    assert mail["To"] == "ann@example.org"
    assert len(smtp_server.messages) == 1
    assert db.execute("SELECT count(*) FROM password_resets").fetchone()[0] == 1


def test_asking_is_rate_limited_per_account_whoever_asks(mail_app, db, smtp_server, frozen_clock):
    make_agent(db)
    answers = [ask_for_link(mail_app.test_client(), "ann@example.org", ip=f"10.3.0.{n}").status_code
               for n in range(4)]
    assert answers == [200, 200, 200, 429]
    assert len(received(smtp_server, 3)) == 3
    # Another account is not held up by the limit on this one.
    assert ask_for_link(mail_app.test_client(), "bob@example.org", ip="10.3.0.9").status_code == 200


def test_an_unknown_address_is_limited_like_a_known_one(client):
    answers = [ask_for_link(client, "nobody@example.org", ip=f"10.4.0.{n}").status_code for n in range(4)]
    assert answers == [200, 200, 200, 429]


def test_asking_is_rate_limited_per_client_address(client):
    answers = [ask_for_link(client, f"person{n}@example.org", ip="10.5.0.1").status_code for n in range(21)]
    assert answers[:20] == [200] * 20 and answers[20] == 429
    assert ask_for_link(client, "person@example.org", ip="10.5.0.2").status_code == 200


def test_asking_needs_the_form_token(client, web_store):  # noqa: F811
    make_agent(web_store)
    response = client.post("/password/forgot", data={"email": "ann@example.org"})
    assert response.status_code == 400
    assert web_store.execute("SELECT count(*) FROM password_resets").fetchone()[0] == 0

