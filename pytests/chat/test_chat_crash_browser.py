"""The chat page in Chromium, behind nginx, when the node holding it is killed (SIGKILL): the
official client comes back on another node with its session (docs/CLUSTER.md, "A crashed
node's clients")."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid

import requests

from .conftest import ChatUser
from .test_chat_browser import make_browser, open_chat, texts, wait
from .test_chat_cluster import Cluster, pytestmark  # noqa: F401 (skipped without a broker, as there)


def websocket_count(node) -> float:
    text = requests.get(node.url + "/metrics", timeout=5).text
    match = re.search(r'^chat_connections_by_transport\{transport="websocket"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_browser_whose_node_is_killed_is_recovered_on_another_without_a_gap(tmp_path):
    cluster = Cluster(tmp_path)
    browser = make_browser()
    sender = None
    try:
        room = f"crash-{uuid.uuid4().hex[:6]}"
        open_chat(browser, cluster.front, "Kim", room=room)
        # The official client starts on polling and upgrades a moment after the welcome.
        deadline = time.monotonic() + 10
        holder = max(cluster.nodes, key=websocket_count)
        while websocket_count(holder) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            holder = max(cluster.nodes, key=websocket_count)
        assert websocket_count(holder) == 1, "the page is on no node"
        other = next(node for node in cluster.nodes if node is not holder)
        sender = ChatUser(other.url, name="Sam", room=room)
        assert sender.send("before the crash")["ok"]
        wait(browser, "first message", lambda d: "before the crash" in texts(d))
        # Come back fast (and through nginx, which skips the dead node).
        browser.execute_script("""
            const manager = window.chatSocket.io;
            manager.reconnectionDelay(500); manager.reconnectionDelayMax(1000); manager.randomizationFactor(0);
        """)
        time.sleep(0.3)  # the session record of the page's join is written within 50 ms

        os.kill(holder.pid, signal.SIGKILL)
        holder.process.wait(timeout=10)
        for i in range(3):
            assert sender.send(f"while it was down {i}")["ok"]
        wait(browser, "back online", lambda d: d.find_element(by="id", value="status").text.startswith("online")
             and d.execute_script("return window.chatSocket.connected"), timeout=20)
        assert browser.execute_script("return window.chatSocket.recovered") is True, \
            browser.find_element(by="id", value="status").text
        assert browser.find_element(by="id", value="status").text == "online (recovered)"
        assert sender.send("after the crash")["ok"]
        expected = ["before the crash"] + [f"while it was down {i}" for i in range(3)] + ["after the crash"]
        wait(browser, "no gap", lambda d: texts(d) == expected)
        # Still in the room on its new node: what it says reaches the others.
        box = browser.find_element(by="id", value="input")
        box.send_keys("Kim is back")
        browser.find_element(by="id", value="send").click()
        sender.wait_for(lambda: any(m["text"] == "Kim is back" for m in sender.messages), timeout=10)
    finally:
        if sender:
            sender.close()
        browser.quit()
        cluster.stop()

