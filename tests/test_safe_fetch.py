"""safe_fetch refuses every address an attacker could aim us at (SEC-09), and fetches the rest."""

from __future__ import annotations

import http.server
import threading

import pytest

from inbox.safe_fetch import FetchRefused, check_host, check_url, safe_fetch

pytestmark = pytest.mark.server  # answers from a loopback HTTP server


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost/", "http://0.0.0.0/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/",
    "http://100.64.0.1/", "http://[fc00::1]/", "http://[fe80::1]/", "http://2130706433/", "http://0177.0.0.1/",
    "http://0x7f.1/", "http://127.1/", "file:///etc/passwd", "gopher://example.com/", "ftp://example.com/x",
    "http://example.com:8080/", "https://user:pw@example.com/", "javascript:alert(1)", "http:///nohost",
])
def test_refused(url):
    with pytest.raises(FetchRefused):
        check_url(url)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254", "::1"])
def test_a_host_inside_the_network_is_refused_on_any_port_unless_allowed(host):
    # For connections that are not HTTP (an IMAP or SMTP server typed into a channel's settings).
    with pytest.raises(FetchRefused, match="non-public address"):
        check_host(host, 993)
    assert check_host(host, 993, allow_hosts=(host,))
    assert check_host(host, 993, allow_hosts=(f"{host}:993",))
    with pytest.raises(FetchRefused):
        check_host(host, 587, allow_hosts=(f"{host}:993",))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 - http.server's naming
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_address[1]}", _Handler.routes
    srv.shutdown()
    _Handler.routes = {}


def test_loopback_is_refused_unless_allowed(server):
    host, routes = server
    routes["/photo.jpg"] = (200, {"Content-Type": "image/jpeg"}, b"\xff\xd8\xffdata")
    with pytest.raises(FetchRefused):
        safe_fetch(f"http://{host}/photo.jpg")
    fetched = safe_fetch(f"http://{host}/photo.jpg", allow_hosts={host})
    assert fetched.data == b"\xff\xd8\xffdata"
    assert fetched.content_type == "image/jpeg"


def test_redirect_to_a_private_address_is_refused(server):
    host, routes = server
    routes["/r"] = (302, {"Location": "http://169.254.169.254/latest/"}, b"")
    with pytest.raises(FetchRefused, match="non-public"):
        safe_fetch(f"http://{host}/r", allow_hosts={host})


def test_oversized_answer_is_refused(server):
    host, routes = server
    routes["/big"] = (200, {"Content-Type": "application/octet-stream"}, b"x" * 5000)
    with pytest.raises(FetchRefused, match="limit"):
        safe_fetch(f"http://{host}/big", allow_hosts={host}, max_bytes=1000)


def test_error_status_is_refused(server):
    host, _ = server
    with pytest.raises(FetchRefused, match="404"):
        safe_fetch(f"http://{host}/missing", allow_hosts={host})
