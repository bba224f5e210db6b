"""The /admin namespace: who may open it, what an overview holds, and its actions.

Single node on the in-memory adapter here (the page across two RabbitMQ nodes is in
test_admin_page.py). The guard: ADMIN_TOKEN, or a sign-in token with "admin": true; with
neither configured the namespace is closed. ADMIN_READ_ONLY refuses every action.
"""

from __future__ import annotations

import time

import pytest
import socketio

from auth.test_tokens import SECRET, Refusal, mint
from chat.conftest import ChatUser, serve_memory_node, start_chat

ADMIN_TOKEN = "admin-token-for-tests-0123456789"


class Admin:
    def __init__(self, url: str, token: str):
        self.client = socketio.Client(reconnection=False)
        self.client.connect(url, namespaces=["/admin"], auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def call(self, event: str, payload=None):
        return self.client.call(event, payload, namespace="/admin", timeout=10)

    def overview(self) -> dict:
        return self.call("admin:overview")

    def close(self):
        self.client.disconnect()


def wait_until(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def admin_node():
    yield from serve_memory_node("chat-admin", {"ADMIN_TOKEN": ADMIN_TOKEN})


@pytest.mark.parametrize("auth, code", [
    (None, "token_missing"),
    ({"token": "wrong"}, "admin_required"),
    ({"token": ADMIN_TOKEN + "x"}, "admin_required"),
    ({"token": ADMIN_TOKEN[:-1]}, "admin_required"),
])
def test_the_admin_namespace_needs_the_admin_token(admin_node, auth, code):
    attempt = Refusal(admin_node.url, auth, namespace="/admin")
    assert not attempt.connected and attempt.code == code, attempt.error
    attempt.close()


def test_the_admin_namespace_is_closed_without_configuration():
    node = start_chat("chat-no-admin", "--adapter", "memory")
    try:
        attempt = Refusal(node.url, {"token": ""}, namespace="/admin")
        assert not attempt.connected and attempt.code == "admin_disabled", attempt.error
    finally:
        node.stop()


def test_a_signed_in_admin_claim_opens_it_and_a_plain_user_token_does_not():
    node = start_chat("chat-jwt-admin", "--adapter", "memory", env={"AUTH_JWT_SECRET": SECRET})
    try:
        attempt = Refusal(node.url, {"token": mint(name="Ann")}, namespace="/admin")
        assert not attempt.connected and attempt.code == "admin_required", attempt.error
        attempt = Refusal(node.url, {"token": mint(name="Ann", ttl=-5, admin=True)}, namespace="/admin")
        assert not attempt.connected and attempt.code == "token_expired", attempt.error
        admin = Admin(node.url, mint(name="Root", admin=True))
        assert admin.overview()["nodes"][0]["ready"] is True
        admin.close()
    finally:
        node.stop()


def test_overview_lists_the_node_rooms_sockets_and_events(admin_node):
    ann = ChatUser(admin_node.url, name="Ann", room="ops")
    ann.wait_for(lambda: ann.welcomes)
    admin = Admin(admin_node.url, ADMIN_TOKEN)
    try:
        overview = admin.overview()
        assert overview["readOnly"] is False and overview["complete"] is True
        [node] = overview["nodes"]
        assert node["ready"] is True and node["broker"].startswith("none") and node["clients"] >= 1
        assert {"room": "ops", "members": 1} in overview["rooms"]
        mine = [s for s in overview["sockets"] if s["name"] == "Ann"]
        assert mine and mine[0]["room"] == "ops" and mine[0]["node"] == node["node"]
        assert any(e[1] == "connect" and "Ann" in e[2] for e in node["events"])
        # Rates: one sample a second once the sampler has a baseline.
        wait_until(lambda: len(admin.overview()["nodes"][0]["rates"]) >= 2, what="rate samples")
    finally:
        admin.close()
        ann.close()


def test_actions_send_join_leave_and_disconnect(admin_node):
    bob = ChatUser(admin_node.url, name="Bob", room="desk")
    bob.wait_for(lambda: bob.welcomes)
    admin = Admin(admin_node.url, ADMIN_TOKEN)
    try:
        bob_id = next(s["id"] for s in admin.overview()["sockets"] if s["name"] == "Bob")
        assert admin.call("admin:send", {"room": "desk", "text": "maintenance at noon"})["ok"] is True
        bob.wait_for(lambda: any(m["text"] == "maintenance at noon" and m["name"] == "operator" for m in bob.messages))

        assert admin.call("admin:join", {"id": bob_id, "room": "announcements"})["ok"] is True
        wait_until(lambda: any(s["id"] == bob_id and "announcements" in s["rooms"] for s in admin.overview()["sockets"]),
                   what="Bob in #announcements")
        assert admin.call("admin:leave", {"id": bob_id, "room": "announcements"})["ok"] is True
        wait_until(lambda: all("announcements" not in s["rooms"] for s in admin.overview()["sockets"] if s["id"] == bob_id),
                   what="Bob out of #announcements")

        for bad in ({"room": "no spaces allowed", "text": "x"}, {"room": "desk", "text": ""}, "not an object"):
            assert admin.call("admin:send", bad)["ok"] is False
        assert admin.call("admin:join", {"id": "../../etc", "room": "x"})["ok"] is False
        assert admin.call("admin:disconnect", {"id": 5})["ok"] is False

        assert admin.call("admin:disconnect", {"id": bob_id})["ok"] is True
        wait_until(lambda: not bob.client.connected, what="Bob disconnected")
        events = admin.overview()["nodes"][0]["events"]
        assert any(e[1] == "disconnect" and "Bob" in e[2] for e in events)
    finally:
        admin.close()
        bob.close()


def test_read_only_mode_refuses_every_action():
    node = start_chat("chat-admin-ro", "--adapter", "memory", env={"ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_READ_ONLY": "1"})
    try:
        carol = ChatUser(node.url, name="Carol", room="general")
        carol.wait_for(lambda: carol.welcomes)
        admin = Admin(node.url, ADMIN_TOKEN)
        overview = admin.overview()
        assert overview["readOnly"] is True
        carol_id = next(s["id"] for s in overview["sockets"] if s["name"] == "Carol")
        for event, payload in (("admin:send", {"room": "general", "text": "hi"}), ("admin:disconnect", {"id": carol_id}),
                               ("admin:join", {"id": carol_id, "room": "x"}), ("admin:leave", {"id": carol_id, "room": "general"})):
            reply = admin.call(event, payload)
            assert reply["ok"] is False and "read-only" in reply["error"], (event, reply)
        time.sleep(0.3)
        assert carol.client.connected and not carol.messages
        admin.close()
        carol.close()
    finally:
        node.stop()
