"""The chat on one node (in-memory adapter), driven by python-socketio clients."""

from __future__ import annotations

import os
import re
import signal
import time

import requests
import socketio

from .conftest import ChatUser, start_chat

ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_bare_client_gets_text_and_iso_date(users):
    # What the original demo page does: connect to "/", emit "message" with a string.
    listener = users()
    sender = users(auth={})
    sender.client.emit("message", "hello from a bare client")
    listener.wait_for(lambda: any(m["text"] == "hello from a bare client" for m in listener.messages))
    message = next(m for m in listener.messages if m["text"] == "hello from a bare client")
    assert ISO_8601.match(message["date"]), message
    assert message["room"] == "general"


def test_text_is_trimmed_and_markup_is_kept_verbatim(users):
    alice = users(name="alice", room="verbatim")
    reply = alice.send("   <img src=x onerror=alert(1)> <script>x()</script>  ")
    assert reply["ok"] is True
    alice.wait_for(lambda: len(alice.messages) == 1)
    assert alice.messages[0]["text"] == "<img src=x onerror=alert(1)> <script>x()</script>"
    assert alice.messages[0]["name"] == "alice"
    assert alice.messages[0]["id"] == reply["id"] and alice.messages[0]["date"] == reply["date"]


def test_empty_and_too_long_messages_are_refused_with_a_clear_error(users):
    alice = users(name="alice", room="validation")
    for text, code in (("", "empty_message"), ("  \n\t ", "empty_message"), ("x" * 2001, "message_too_long"),
                       (42, "not_text")):
        reply = alice.send(text)
        assert reply["ok"] is False and reply["error"]["code"] == code, (text, reply)
    alice.wait_for(lambda: len(alice.errors) == 4)
    assert [e["code"] for e in alice.errors] == ["empty_message", "empty_message", "message_too_long", "not_text"]
    assert "2000" in alice.errors[2]["message"]
    assert alice.send("x" * 2000)["ok"] is True  # exactly at the limit is fine
    time.sleep(0.2)
    assert len(alice.messages) == 1, "refused messages must not be broadcast"


def test_rate_limit_refuses_excess_with_an_error_event():
    node = start_chat("chat-ratelimit", "--adapter", "memory", "--rate-limit", "2", "--rate-burst", "5")
    try:
        user = ChatUser(node.url, name="flooder")
        replies = [user.send(f"m{i}") for i in range(12)]
        accepted = [r for r in replies if r["ok"]]
        refused = [r for r in replies if not r["ok"]]
        # 5 in the burst, maybe one more refilled while the 12 round trips ran.
        assert 5 <= len(accepted) <= 7, replies
        assert refused and all(r["error"]["code"] == "rate_limited" for r in refused)
        user.wait_for(lambda: len(user.errors) == len(refused))
        assert "too fast" in user.errors[0]["message"]
        time.sleep(1.0)  # two tokens come back
        assert user.send("after a pause")["ok"] is True
        user.close()
    finally:
        node.stop()


def test_room_broadcasts_stay_in_their_room(users):
    red = users(name="red", room="red")
    blue = users(name="blue", room="blue")
    assert red.send("only for red")["ok"]
    red.wait_for(lambda: len(red.messages) == 1)
    time.sleep(0.3)
    assert blue.messages == []


def test_history_on_connect_and_on_join(users):
    writer = users(name="writer", room="history")
    for i in range(105):
        assert writer.send(f"line {i}")["ok"]
    newcomer = users(name="newcomer", room="history")
    newcomer.wait_for(lambda: newcomer.welcomes)
    history = newcomer.welcomes[0]["history"]
    assert [m["text"] for m in history] == [f"line {i}" for i in range(5, 105)]
    elsewhere = users(name="elsewhere", room="lobby")
    joined = elsewhere.client.call("join", {"room": "History"}, timeout=5)
    assert joined["ok"] is True and joined["room"] == "history"
    assert [m["text"] for m in joined["history"]][-3:] == ["line 102", "line 103", "line 104"]
    assert "history" in joined["rooms"]


def test_invalid_room_and_name_are_refused(users):
    user = users(name="valid")
    reply = user.client.call("join", {"room": "no spaces allowed"}, timeout=5)
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_room"
    reply = user.client.call("set-name", "", timeout=5)
    assert reply["ok"] is False and reply["error"]["code"] == "invalid_name"
    reply = user.client.call("set-name", "  Grace  ", timeout=5)
    assert reply == {"ok": True, "name": "Grace"}


def test_presence_lists_everyone_in_the_room(users):
    ada = users(name="ada", room="presence")
    ada.wait_for(lambda: ada.welcomes)
    bob = users(name="bob", room="presence")
    ada.wait_for(lambda: any(p["members"] == ["ada", "bob"] for p in ada.presence))
    bob.close()
    ada.wait_for(lambda: ada.presence[-1]["members"] == ["ada"])


def test_a_crowd_gets_a_capped_list_the_full_count_and_few_updates(users):
    # 110 arrivals: the list stops at 100 names, the count does not, and the joins are
    # sent together rather than as one presence update (to everyone) per arrival.
    watcher = users(name="aaa-watcher", room="crowd")
    watcher.wait_for(lambda: watcher.welcomes)
    crowd = [users(name=f"guest{i:03d}", room="crowd") for i in range(109)]
    watcher.wait_for(lambda: watcher.presence and watcher.presence[-1]["count"] == 110, timeout=20)
    last = watcher.presence[-1]
    assert len(last["members"]) == 100
    assert last["members"] == sorted(["aaa-watcher"] + [f"guest{i:03d}" for i in range(109)])[:100]
    assert len(watcher.presence) < 40, f"{len(watcher.presence)} presence updates for 110 arrivals"
    newcomer = users(name="zzz-late", room="crowd")
    newcomer.wait_for(lambda: newcomer.welcomes)
    welcome = newcomer.welcomes[-1]
    assert welcome["memberCount"] == 111 and len(welcome["members"]) == 100
    for user in crowd:
        user.close()


def test_typing_reaches_the_others_in_the_room_only(users):
    ada = users(name="ada", room="typing")
    bob = users(name="bob", room="typing")
    eve = users(name="eve", room="elsewhere")
    ada.client.emit("typing", True)
    bob.wait_for(lambda: bob.typing)
    assert bob.typing[0] == {"name": "ada", "room": "typing", "typing": True}
    time.sleep(0.3)
    assert ada.typing == [] and eve.typing == []


def test_health_readiness_and_metrics(chat_node, users):
    assert requests.get(chat_node.url + "/healthz", timeout=5).status_code == 200
    ready = requests.get(chat_node.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and "in-memory" in ready.text

    def broadcast_count() -> float:
        text = requests.get(chat_node.url + "/metrics", timeout=5).text
        match = re.search(r"^chat_messages_broadcast_total (\S+)$", text, re.M)
        assert match, text
        return float(match.group(1))

    before = broadcast_count()
    user = users(name="metered", room="metrics")
    for i in range(3):
        assert user.send(f"counted {i}")["ok"]
    assert broadcast_count() == before + 3
    text = requests.get(chat_node.url + "/metrics", timeout=5).text
    assert re.search(r'^chat_connections_by_transport\{transport="websocket"\} [1-9]', text, re.M), text
    # Engine.IO traffic from the library: packets in and out, slow-client closes.
    packets_in = re.search(r"^engineio_messages_received_total (\d+)", text, re.M)
    packets_out = re.search(r"^engineio_messages_sent_total (\d+)", text, re.M)
    assert packets_in and int(packets_in.group(1)) >= 3, text
    assert packets_out and int(packets_out.group(1)) >= 6, text  # 3 acks + 3 broadcasts at least
    assert re.search(r"^engineio_slow_client_closes_total \d+", text, re.M), text


def test_page_and_official_client_are_served(chat_node):
    page = requests.get(chat_node.url + "/", timeout=5)
    assert page.status_code == 200 and "<script src=\"/socket.io/socket.io.min.js\"></script>" in page.text
    client = requests.get(chat_node.url + "/socket.io/socket.io.min.js", timeout=5)
    assert client.status_code == 200 and client.headers["Content-Type"].startswith("application/javascript")
    assert requests.get(chat_node.url + "/../Package.swift", timeout=5).status_code == 404
    assert requests.get(chat_node.url + "/nope", timeout=5).status_code == 404


def test_graceful_shutdown_closes_clients_so_they_reconnect():
    node = start_chat("chat-shutdown", "--adapter", "memory")
    client = socketio.Client(reconnection=False)
    reasons = []
    client.on("disconnect", lambda *reason: reasons.append(reason))
    client.connect(node.url, transports=["websocket"], wait_timeout=10)
    started = time.monotonic()
    os.kill(node.pid, signal.SIGTERM)
    exit_code = node.process.wait(timeout=10)
    assert exit_code == 0, node.tail()
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.connected
    # A transport close (not "io server disconnect"), so real clients reconnect elsewhere.
    assert reasons and "server disconnect" not in str(reasons[0]), reasons
    node.stop()
