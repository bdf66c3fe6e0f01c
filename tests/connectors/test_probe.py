"""Connection tests (`Connector.probe`, #13): every connector against its imitation.

Good credentials name the account; bad ones say what to do next and show no secret; a probe asks
only the channel's "who am I" call (nothing consumed, nothing refreshed, no cursor moved); an
address inside the network is refused unless `fetch_allow_hosts` lists it; and a timeout, a closed
port, a dropped connection, a server error, a redirect and an answer that is not JSON each say so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest

from connectors._probe import PROBE_TIMEOUT, probe_timeout
from connectors.base import Connector, ProbeResult
from connectors.bluesky import BlueskyConnector
from connectors.facebook import FacebookConnector
from connectors.imap import ImapConnector
from connectors.instagram import InstagramConnector
from connectors.mastodon import MastodonConnector
from connectors.telegram import TelegramConnector
from connectors.testing import free_loopback_port
from connectors.webform import WebformConnector
from connectors.whatsapp import WhatsAppConnector
from connectors.x import XConnector
from inbox.models import FetchResult
from inbox.runtime import ConnectorContext
from sandbox.base import Imitation
from sandbox.bluesky import BlueskyImitation
from sandbox.mastodon import MastodonImitation
from sandbox.meta import MetaImitation
from sandbox.telegram import TelegramImitation
from sandbox.whatsapp import WhatsAppImitation
from sandbox.x import XImitation
from tests.servers import SmtpSink, imap_append, imap_status

pytestmark = pytest.mark.server  # starts loopback imitations of the channel APIs


def context(tmp_path, *allow: str, base_url: str = "https://inbox.example.net") -> ConnectorContext:
    return ConnectorContext(instance_id="probe-test", mail_domain="mainland.test", base_url=base_url,
                            max_message_bytes=1 << 20, max_attachment_bytes=1 << 20, data_dir=tmp_path,
                            fetch_allow_hosts=allow)


@dataclasses.dataclass(frozen=True)
class Case:
    """One channel: how to reach its imitation, what a good answer reads, how to spoil the credentials."""

    kind: str
    imitation: Callable[[], Imitation]
    connector: type[Connector]
    settings: Callable[[Any], dict[str, Any]]
    bad: dict[str, str]
    signed_in: str
    refused_status: int
    url_key: str
    #: The requests a probe may make, as (method, path pattern).
    calls: tuple[tuple[str, str], ...]


CASES = [
    Case("x", XImitation, XConnector,
         lambda i: {"user_id": i.user_id, "api_url": i.url, "access_token": i.access_token,
                    "refresh_token": i.refresh_token, "client_id": i.client_id},
         {"access_token": "x-access-token-stale"}, "Signed in as @AcmeSupport (id 2244994945)", 401, "api_url",
         (("GET", r"^/2/users/me$"),)),
    Case("telegram", TelegramImitation, TelegramConnector,
         lambda i: {"token": i.token, "api_url": i.url},
         {"token": "123456789:AAH-revoked-token-revoked-token"},
         "Telegram bot @acme_support_bot answers (id 7000000001)", 401, "api_url",
         (("GET", r"^/bot[^/]+/getMe$"),)),
    Case("mastodon", MastodonImitation, MastodonConnector,
         lambda i: {"base_url": i.url, "access_token": i.token, "account_domain": i.domain},
         {"access_token": "mastodon-token-revoked"}, "Signed in as @support@acme.social (id 971724)", 401,
         "base_url", (("GET", r"^/api/v1/accounts/verify_credentials$"),)),
    Case("bluesky", BlueskyImitation, BlueskyConnector,
         lambda i: {"identifier": i.handle, "app_password": i.app_password, "service_url": i.url},
         {"app_password": "zzzz-zzzz-zzzz-zzzz"}, "Signed in as @acme.bsky.social (did:plc:acme0000000000)", 401,
         "service_url",
         (("POST", r"^/xrpc/com\.atproto\.server\.createSession$"), ("GET", r"^/xrpc/com\.atproto\.server\.getSession$"))),
    Case("facebook", MetaImitation, FacebookConnector,
         lambda i: {"page_id": i.page_id, "access_token": i.access_token, "app_secret": i.app_secret, "api_url": i.url},
         {"access_token": "meta-page-token-expired"}, "Signed in as the Page Acme Shop (id 112130216863063)", 400,
         "api_url", (("GET", r"^/v[\d.]+/me$"),)),
    Case("instagram", MetaImitation, InstagramConnector,
         lambda i: {"account_id": i.ig_id, "page_id": i.page_id, "access_token": i.access_token,
                    "app_secret": i.app_secret, "api_url": i.url},
         {"access_token": "meta-page-token-expired"}, "Signed in as @acmeshop (id 17841400123456789)", 400,
         "api_url", (("GET", r"^/v[\d.]+/17841400123456789$"),)),
    Case("whatsapp", WhatsAppImitation, WhatsAppConnector,
         lambda i: {"phone_number_id": i.phone_number_id, "access_token": i.access_token, "app_secret": i.app_secret,
                    "verify_token": i.verify_token, "api_url": i.url},
         {"access_token": "whatsapp-token-expired"}, "WhatsApp number +1 555-078-3881 (Acme Shop) answers", 401,
         "api_url", (("GET", r"^/v[\d.]+/106540352242922$"),)),
]


@pytest.fixture(params=CASES, ids=[c.kind for c in CASES])
def case(request):
    return request.param


@pytest.fixture
def imitation(case):
    with case.imitation() as running:
        yield running


def probe(case: Case, settings: dict[str, Any], ctx: ConnectorContext) -> tuple[ProbeResult, Connector]:
    connector = case.connector("probe", settings, context=ctx)
    try:
        return connector.probe(), connector
    finally:
        connector.close()


# Every channel ----------------------------------------------------------------------------------


def test_good_credentials_name_the_account(case, imitation, tmp_path):
    result, connector = probe(case, case.settings(imitation), context(tmp_path, imitation.host))
    assert result.ok, result
    assert result.summary == case.signed_in
    assert result.status == 200
    assert result.detail.startswith("HTTP 200")
    for secret in connector.secrets:
        assert secret not in result.summary and secret not in result.detail


def test_bad_credentials_say_what_to_do_and_show_no_secret(case, imitation, tmp_path):
    settings = {**case.settings(imitation), **case.bad}
    result, connector = probe(case, settings, context(tmp_path, imitation.host))
    assert not result.ok
    assert result.status == case.refused_status
    assert f"({case.refused_status})" in result.summary
    assert "paste" in result.summary  # the next step: a new credential, pasted into the form
    assert result.detail.startswith(f"HTTP {case.refused_status}")
    for secret in [*case.bad.values(), *connector.secrets]:
        assert secret not in result.summary and secret not in result.detail


def test_a_probe_only_asks_who_we_are(case, imitation, tmp_path):
    """Nothing consumed, nothing sent, no token refreshed: only the documented "who am I" calls."""
    before = len(imitation.requests)
    for settings in (case.settings(imitation), {**case.settings(imitation), **case.bad}):
        probe(case, settings, context(tmp_path, imitation.host))
    asked = imitation.requests[before:]
    assert asked
    for request in asked:
        assert any(request.method == method and re.search(path, request.path) for method, path in case.calls), \
            f"a probe must not call {request.method} {request.path}"
    assert not (tmp_path / "tokens").exists()  # X keeps refreshed tokens there: none were refreshed


def test_an_address_inside_the_network_is_refused_unless_allowed(case, imitation, tmp_path):
    result, _ = probe(case, case.settings(imitation), context(tmp_path))  # the imitation is not allowed
    assert not result.ok
    assert "non-public address" in result.summary
    assert "fetch_allow_hosts" in result.summary
    assert imitation.requests == [], "a refused host must not be contacted at all"


def test_an_unreachable_host_says_so_without_the_credentials(case, imitation, tmp_path):
    settings = {**case.settings(imitation), case.url_key: f"http://127.0.0.1:{free_loopback_port()}"}
    result, connector = probe(case, settings, context(tmp_path, "127.0.0.1"))
    assert not result.ok
    assert result.summary.startswith("Could not connect to")
    assert result.status is None
    for secret in connector.secrets:  # Telegram's token is part of every URL
        assert secret not in result.summary and secret not in result.detail


# How failures read (Mastodon: its server address is the one admins type) -----------------------


@pytest.fixture
def mastodon():
    with MastodonImitation() as imitation:
        yield imitation


def mastodon_probe(mastodon: MastodonImitation, tmp_path, **settings: Any) -> ProbeResult:
    connector = MastodonConnector("social", {"base_url": mastodon.url, "access_token": mastodon.token,
                                             "account_domain": mastodon.domain, **settings},
                                  context=context(tmp_path, mastodon.host))
    try:
        return connector.probe()
    finally:
        connector.close()


def test_a_slow_server_is_a_timeout(mastodon, tmp_path):
    mastodon.delay_next(3)
    result = mastodon_probe(mastodon, tmp_path, timeout=1)
    assert not result.ok
    assert result.summary.startswith("Mastodon did not answer within 1 s")


def test_a_dropped_connection_says_it_could_not_connect(mastodon, tmp_path):
    mastodon.drop_next()
    result = mastodon_probe(mastodon, tmp_path)
    assert not result.ok
    assert result.summary.startswith("Could not connect to Mastodon")


def test_an_answer_that_is_not_json_is_not_taken_for_a_server(mastodon, tmp_path):
    mastodon.fail_next(200, "<html><body>Welcome to nginx!</body></html>", {"Content-Type": "text/html"})
    result = mastodon_probe(mastodon, tmp_path)
    assert not result.ok
    assert "not JSON" in result.summary and "check the address" in result.summary
    assert "Welcome to nginx!" in result.detail


def test_a_server_error_says_try_again_later(mastodon, tmp_path):
    mastodon.fail_next(503, {"error": "Service Unavailable"})
    result = mastodon_probe(mastodon, tmp_path)
    assert (result.ok, result.status) == (False, 503)
    assert "try again later" in result.summary


def test_a_redirect_is_not_followed(mastodon, tmp_path):
    # A redirect to the cloud's metadata address would otherwise slip past the address check.
    mastodon.fail_next(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"})
    result = mastodon_probe(mastodon, tmp_path)
    assert (result.ok, result.status) == (False, 302)
    assert "169.254.169.254" in result.summary and "check the address" in result.summary


def test_the_probe_waits_at_most_fifteen_seconds():
    slow = MastodonConnector("social", {"base_url": "https://acme.social", "access_token": "t", "timeout": 60})
    quick = MastodonConnector("social", {"base_url": "https://acme.social", "access_token": "t", "timeout": 5})
    assert (probe_timeout(slow), probe_timeout(quick)) == (PROBE_TIMEOUT, 5.0)
    assert PROBE_TIMEOUT == 15.0


# Channel particulars ---------------------------------------------------------------------------


def test_x_says_when_the_token_is_for_another_account(tmp_path):
    with XImitation() as x:
        connector = XConnector("x", {"user_id": "12345", "api_url": x.url, "access_token": x.access_token},
                               context=context(tmp_path, x.host))
        result = connector.probe()
    assert not result.ok
    assert "@AcmeSupport (id 2244994945), not to user_id 12345" in result.summary


def test_x_never_refreshes_a_refused_token(tmp_path):
    with XImitation() as x:
        x.expire_token()
        connector = XConnector("x", {"user_id": x.user_id, "api_url": x.url, "access_token": x.access_token,
                                     "refresh_token": x.refresh_token, "client_id": x.client_id},
                               context=context(tmp_path, x.host))
        result = connector.probe()
        assert (result.ok, result.status) == (False, 401)
        assert x.token_requests == [] and x.requests_to(r"oauth2/token") == []


def test_facebook_says_when_the_token_is_for_another_page(tmp_path):
    with MetaImitation() as meta:
        connector = FacebookConnector("fb", {"page_id": "999000111", "access_token": meta.access_token,
                                             "api_url": meta.url}, context=context(tmp_path, meta.host))
        result = connector.probe()
    assert not result.ok
    assert "Acme Shop (id 112130216863063), not for page_id 999000111" in result.summary


def test_telegram_probe_leaves_waiting_messages_for_the_worker(tmp_path):
    with TelegramImitation() as telegram:
        ctx = context(tmp_path, telegram.host)
        telegram.private_message("Jane", "Where is my parcel?")
        connector = TelegramConnector("tg", {"token": telegram.token, "api_url": telegram.url}, context=ctx)
        assert connector.probe().ok
        result: FetchResult = connector.fetch(None)
        connector.close()
    assert [item.text for item in result.items] == ["Where is my parcel?"]


def test_bluesky_probe_keeps_its_session_apart_from_the_workers(tmp_path):
    with BlueskyImitation() as pds:
        ctx = context(tmp_path, pds.host)
        settings = {"identifier": pds.handle, "app_password": pds.app_password, "service_url": pds.url}
        assert BlueskyConnector("sky", settings, context=ctx).probe().ok
        # The worker still signs in itself; the probe's session was never cached for it.
        worker = BlueskyConnector("sky", settings, context=ctx)
        worker.fetch(None)
        assert pds.logins == 2


def test_webform_has_nothing_to_connect_to_and_gives_its_address(tmp_path):
    connector = WebformConnector("contact", {"reply_channel": "mail"}, context=context(tmp_path))
    result = connector.probe()
    assert result == ProbeResult(True, "Web forms receive posts; nothing to connect to",
                                 detail="https://inbox.example.net/forms/contact")


def test_a_connector_without_a_probe_says_so():
    class Quiet(Connector):
        kind = "quiet"
        display_name = "Quiet"

        def fetch(self, cursor):
            return FetchResult(items=[], cursor=cursor)

        def send(self, reply):
            return "1"

    assert Quiet("q", {}).probe() == ProbeResult(False, "This channel has no connection test")


# Email: a real Dovecot and an SMTP sink ----------------------------------------------------------


def mail_settings(account: dict[str, Any], smtp: SmtpSink, **extra: Any) -> dict[str, Any]:
    return {"host": account["host"], "port": account["port"], "security": "none", "username": account["user"],
            "password": account["password"], "address": "support@mainland.test", "smtp_host": smtp.host,
            "smtp_port": smtp.port, "smtp_security": "none", "timeout": 10, **extra}


def mail_probe(settings: dict[str, Any], ctx: ConnectorContext) -> ProbeResult:
    connector = ImapConnector("mail", settings, context=ctx)
    try:
        return connector.probe()
    finally:
        connector.close()


def test_email_probe_counts_the_mailbox_and_leaves_it_unread(imap_account, smtp_server, tmp_path):
    for n in (1, 2):
        imap_append(imap_account, f"From: jane@example.net\r\nSubject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nHi\r\n".encode())
    result = mail_probe(mail_settings(imap_account, smtp_server), context(tmp_path, "127.0.0.1"))
    assert result.ok, result
    assert result.summary == "IMAP: signed in, INBOX holds 2 messages; SMTP: answers (no sign-in configured)"
    assert imap_status(imap_account)["UNSEEN"] == 2  # EXAMINE: no \Seen set
    assert smtp_server.messages == []  # no mail sent
    assert imap_account["password"] not in result.detail


def test_email_probe_signs_in_to_smtp(imap_account, tmp_path):
    with SmtpSink(auth=("mailer", "smtp-secret-1")) as smtp:
        good = mail_probe(mail_settings(imap_account, smtp, smtp_username="mailer", smtp_password="smtp-secret-1"),
                          context(tmp_path, "127.0.0.1"))
        bad = mail_probe(mail_settings(imap_account, smtp, smtp_username="mailer", smtp_password="smtp-wrong-2"),
                         context(tmp_path, "127.0.0.1"))
    assert good.ok and good.summary.endswith("SMTP: accepted the sign-in")
    assert not bad.ok and bad.status == 535
    assert "refused the sign-in of mailer (535)" in bad.summary
    assert "smtp-wrong-2" not in bad.summary + bad.detail


def test_email_probe_says_when_imap_refuses_the_password(imap_account, smtp_server, tmp_path):
    result = mail_probe(mail_settings(imap_account, smtp_server, password="imap-wrong-password"),
                        context(tmp_path, "127.0.0.1"))
    assert not result.ok
    assert result.summary.startswith(f"IMAP: 127.0.0.1 refused the sign-in of {imap_account['user']}")
    assert "imap-wrong-password" not in result.summary + result.detail


def test_email_probe_names_a_folder_that_does_not_exist(imap_account, smtp_server, tmp_path):
    result = mail_probe(mail_settings(imap_account, smtp_server, mailbox="Support"), context(tmp_path, "127.0.0.1"))
    assert not result.ok
    assert result.summary.startswith("IMAP: signed in, but the folder Support cannot be opened")


def test_email_probe_refuses_a_server_inside_the_network(imap_account, smtp_server, tmp_path):
    result = mail_probe(mail_settings(imap_account, smtp_server), context(tmp_path))
    assert not result.ok
    assert result.summary.startswith("IMAP: 127.0.0.1 was not contacted")
    assert "fetch_allow_hosts" in result.summary
    # Allowing only the IMAP host still guards the SMTP host.
    smtp_only = mail_probe(mail_settings(imap_account, smtp_server, smtp_host="localhost"),
                           context(tmp_path, "127.0.0.1"))
    assert not smtp_only.ok and "SMTP: localhost was not contacted" in smtp_only.summary


def test_email_probe_says_when_nothing_listens(imap_account, smtp_server, tmp_path):
    result = mail_probe(mail_settings(imap_account, smtp_server, port=free_loopback_port()),
                        context(tmp_path, "127.0.0.1"))
    assert not result.ok
    assert result.summary.startswith("IMAP: could not connect to 127.0.0.1:")
