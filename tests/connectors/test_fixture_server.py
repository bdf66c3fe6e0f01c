"""The contract kit's fixture server (connectors/fixtures.py): recorded exchanges served on loopback.

It answers only what was recorded, in order, and says plainly what it could not answer: these tests
drive it with real HTTP requests and check matching, sequences, placeholders and its account of
what was used.
"""

from __future__ import annotations

import json

import pytest
import requests

from connectors.fixtures import FixtureError, FixtureServer, load_exchanges

pytestmark = pytest.mark.server  # the fixture server listens on a loopback port


def record(folder, name, exchange):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(exchange))


def page(after, messages, **extra):
    return {"request": {"method": "GET", "path": "/v1/messages", "query": {"after": after},
                        "headers": {"Authorization": "Bearer {{token}}"}},
            "response": {"status": 200, "json": {"messages": messages}}, **extra}


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "recorded"


def serve(folder, **kwargs):
    return FixtureServer(folder, variables={"token": "t-123"}, **kwargs)


def test_a_request_gets_the_answer_recorded_for_it(folder):
    record(folder, "01-page.json", page("0", [{"id": 1, "text": "Hello"}]))
    record(folder, "02-send.json", {
        "request": {"method": "POST", "path": "/v1/messages", "json": {"chat": "c1", "reply_to": "1"}},
        "response": {"status": 201, "headers": {"Location": "/v1/messages/s1"}, "json": {"id": "s1"}}})
    with serve(folder) as server:
        got = requests.get(f"{server.url}/v1/messages", params={"after": "0"},
                           headers={"Authorization": "Bearer t-123"}, timeout=5)
        # Members the recording does not name (text) are free; the named ones must agree.
        sent = requests.post(f"{server.url}/v1/messages", json={"chat": "c1", "reply_to": "1", "text": "Hi"},
                             timeout=5)
    assert got.status_code == 200 and got.json() == {"messages": [{"id": 1, "text": "Hello"}]}
    assert sent.status_code == 201 and sent.json() == {"id": "s1"}
    assert sent.headers["Location"] == "/v1/messages/s1"
    assert server.used() == ["recorded/01-page.json", "recorded/02-send.json"]
    assert server.problems() == []
    assert server.received("POST", "/messages")[0].json()["text"] == "Hi"


def test_an_unmatched_request_is_answered_501_naming_it_and_the_closest_recordings(folder):
    record(folder, "01-page.json", page("0", []))
    with serve(folder) as server:
        answer = requests.get(f"{server.url}/v1/messages", params={"after": "7"},
                              headers={"Authorization": "Bearer t-123"}, timeout=5)
    assert answer.status_code == 501
    body = answer.json()
    assert body["error"] == "fixture server: no recording matches this request: GET /v1/messages"
    assert body["request"]["query"] == {"after": ["7"]}
    assert body["closest"] == [{"recording": "recorded/01-page.json (GET /v1/messages)",
                                "differs": ["query after: recorded 0, got ['7']"]}]
    assert server.problems() == [
        "no recording answered GET /v1/messages {'after': ['7']} b'' (closest: recorded/01-page.json "
        "(GET /v1/messages): query after: recorded 0, got ['7'])",
        "recorded but never requested: recorded/01-page.json (GET /v1/messages)",
    ]


def test_a_wrong_header_or_body_is_not_matched(folder):
    record(folder, "01-page.json", page("0", []))
    record(folder, "02-send.json", {"request": {"method": "POST", "path": "/v1/messages", "json": {"chat": "c1"}},
                                    "response": {"status": 201, "json": {"id": "s1"}}})
    with serve(folder) as server:
        unsigned = requests.get(f"{server.url}/v1/messages", params={"after": "0"}, timeout=5)
        elsewhere = requests.post(f"{server.url}/v1/messages", json={"chat": "c2"}, timeout=5)
    assert unsigned.status_code == 501
    assert "header Authorization: recorded 'Bearer t-123', got None" in unsigned.json()["closest"][0]["differs"]
    assert elsewhere.status_code == 501
    assert elsewhere.json()["closest"][0]["differs"] == ['json.chat: recorded "c1", got "c2"']


def test_the_same_request_is_answered_in_recorded_order(folder):
    record(folder, "01-limited.json", {
        "request": {"method": "GET", "path": "/v1/messages"},
        "response": {"status": 429, "headers": {"Retry-After": "30"}, "json": {"error": "slow down"}}})
    record(folder, "02-page.json", page("0", [{"id": 1}]))
    record(folder, "03-empty.json", page("0", []))
    with serve(folder) as server:
        answers = [requests.get(f"{server.url}/v1/messages", params={"after": "0"},
                                headers={"Authorization": "Bearer t-123"}, timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 200, 200, 501]
    assert answers[0].headers["Retry-After"] == "30"
    assert [a.json().get("messages") for a in answers[1:3]] == [[{"id": 1}], []]
    assert "every recording of this request has answered already" in answers[3].json()["error"]
    assert server.problems() == ["no recording answered GET /v1/messages {'after': ['0']} b'' "
                                 "(recorded/01-limited.json, recorded/02-page.json, recorded/03-empty.json "
                                 "answered already)"]


def test_a_repeating_recording_keeps_answering_after_its_turn(folder):
    record(folder, "01-page.json", page("0", [{"id": 1}]))
    record(folder, "02-empty.json", page("0", [], repeat=True))
    with serve(folder) as server:
        answers = [requests.get(f"{server.url}/v1/messages", params={"after": "0"},
                                headers={"Authorization": "Bearer t-123"}, timeout=5).json() for _ in range(4)]
    assert answers == [{"messages": [{"id": 1}]}] + [{"messages": []}] * 3
    assert server.problems() == []


def test_null_means_absent_in_query_and_json(folder):
    record(folder, "01-first.json", {"request": {"method": "POST", "path": "/poll", "query": {"since": None},
                                                 "json": {"offset": None}},
                                     "response": {"status": 200, "json": {"first": True}}})
    record(folder, "02-next.json", {"request": {"method": "POST", "path": "/poll", "json": {"offset": 5}},
                                    "response": {"status": 200, "json": {"first": False}}})
    with serve(folder) as server:
        with_since = requests.post(f"{server.url}/poll", params={"since": "1"}, json={}, timeout=5)
        first = requests.post(f"{server.url}/poll", json={"limit": 100}, timeout=5)
        offset_true = requests.post(f"{server.url}/poll", json={"offset": True}, timeout=5)
        following = requests.post(f"{server.url}/poll", json={"offset": 5}, timeout=5)
    assert with_since.status_code == 501
    assert first.json() == {"first": True}
    assert offset_true.status_code == 501, "JSON true is not the number recorded"
    assert following.json() == {"first": False}


def test_placeholders_fill_requests_and_answers(folder):
    record(folder, "01-file.json", {"request": {"method": "GET", "path": "/bot{{token}}/getFile"},
                                    "response": {"status": 200, "json": {"url": "{{fixture_url}}/f/1"}}})
    with serve(folder) as server:
        got = requests.get(f"{server.url}/bott-123/getFile", timeout=5)
    assert got.json() == {"url": f"{server.url}/f/1"}


def test_an_unknown_placeholder_stops_the_server_naming_the_file(folder):
    record(folder, "02-broken.json", {"request": {"method": "GET", "path": "/{{nonsuch}}"},
                                      "response": {"status": 200, "body": "x"}})
    with pytest.raises(FixtureError) as refused:
        serve(folder).start()
    assert str(refused.value) == "recorded/02-broken.json: unknown placeholder {{nonsuch}} (known: fixture_url, token)"


def test_shared_recordings_may_go_unused_and_lists_are_sequences(tmp_path, folder):
    shared = tmp_path / "shared"
    record(shared, "01-me.json", {"request": {"method": "GET", "path": "/me"},
                                  "response": {"status": 200, "json": {"id": 1}}})
    record(folder, "01-pages.json", [page("0", [{"id": 1}]), page("0", [])])
    with serve(folder, optional=[shared]) as server:
        pages = [requests.get(f"{server.url}/v1/messages", params={"after": "0"},
                              headers={"Authorization": "Bearer t-123"}, timeout=5).json() for _ in range(2)]
    assert pages == [{"messages": [{"id": 1}]}, {"messages": []}]
    assert server.used() == ["recorded/01-pages.json#1", "recorded/01-pages.json#2"]
    assert server.problems() == []


@pytest.mark.parametrize(("content", "says"), [
    ("{not json", "not JSON"),
    (json.dumps({"request": {"method": "GET", "path": "/x"}}), "a `request` and a `response` object"),
    (json.dumps({"request": {"method": "GET", "path": "x"}, "response": {"status": 200}}), "starting with /"),
    (json.dumps({"request": {"method": "GET", "path": "/x"}, "response": {"status": "200"}}), "integer `status`"),
    (json.dumps({"request": {"method": "GET", "path": "/x", "params": {}}, "response": {"status": 200}}),
     "unknown request field(s) params"),
])
def test_a_broken_recording_is_refused_naming_its_file(folder, content, says):
    folder.mkdir()
    (folder / "07-bad.json").write_text(content)
    with pytest.raises(FixtureError) as refused:
        load_exchanges(folder)
    assert "07-bad.json" in str(refused.value) and says in str(refused.value)
