"""The imitation base: routes, state, and injected faults behave as a real API's would."""

from __future__ import annotations

import pytest
import requests

from sandbox.base import Imitation, route

pytestmark = pytest.mark.server  # answers from a loopback HTTP server


class EchoImitation(Imitation):
    name = "echo"

    def __init__(self):
        super().__init__()
        self.items = []

    @route("POST", r"/items")
    def add(self, request):
        self.items.append(request.json())
        return 201, {"id": len(self.items)}

    @route("GET", r"/items/(?P<item_id>\d+)")
    def get(self, request, item_id):
        return 200, self.items[int(item_id) - 1], {"X-RateLimit-Remaining": "99"}


@pytest.fixture
def echo():
    with EchoImitation() as imitation:
        yield imitation


def test_routes_keep_state(echo):
    assert requests.post(f"{echo.url}/items", json={"text": "hi"}, timeout=5).json() == {"id": 1}
    answer = requests.get(f"{echo.url}/items/1", timeout=5)
    assert answer.json() == {"text": "hi"}
    assert answer.headers["X-RateLimit-Remaining"] == "99"
    assert requests.get(f"{echo.url}/nothing", timeout=5).status_code == 404
    assert [r.path for r in echo.requests] == ["/items", "/items/1", "/nothing"]


def test_injected_failure_answers_once(echo):
    echo.fail_next(429, {"error": "Too Many Requests"}, {"Retry-After": "7"})
    first = requests.get(f"{echo.url}/items/1", timeout=5)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert requests.post(f"{echo.url}/items", json={}, timeout=5).status_code == 201


def test_dropped_connection_and_delay(echo):
    echo.drop_next()
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{echo.url}/items", json={}, timeout=5)
    echo.delay_next(2)
    with pytest.raises(requests.Timeout):
        requests.post(f"{echo.url}/items", json={}, timeout=0.5)
