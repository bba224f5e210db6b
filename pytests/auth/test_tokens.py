"""Signed-in identity (AUTH_JWT_SECRET / AUTH_JWT_KEYS): the name comes from a verified token.

Every refusal is a CONNECT_ERROR whose data says why (`{code, message}`), and a recovered
session runs the check again: a token that expired while the client was away is refused
(socket.io's default `skipMiddlewares` would let it back in). docs/SECURITY.md.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import jwt
import pytest
import socketio
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chat.conftest import ChatUser, serve_memory_node, start_chat
from interop.rawclient import RawWebSocket

SECRET = "test-secret-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-0123456789-abcdefghijklm"


def hs256_with_key_text(key_text: str, claims: dict, kid: str) -> str:
    """HS256 signed with arbitrary text as the secret (PyJWT refuses public keys as HMAC
    secrets, which is exactly the algorithm-confusion attack this builds)."""
    import hashlib
    import hmac

    def part(data) -> str:
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()

    signing_input = part({"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + part(claims)
    signature = hmac.new(key_text.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def mint(claims: dict | None = None, key=SECRET, algorithm="HS256", headers=None, ttl=300, **extra) -> str:
    payload = {"sub": "ann", "name": "Ann", "exp": int(time.time()) + ttl}
    payload.update(claims or {})
    payload.update(extra)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm, headers=headers)


class Refusal:
    """Connects with python-socketio and records the CONNECT_ERROR data, if any."""

    def __init__(self, url: str, auth: dict | None, namespace: str = "/"):
        self.client = socketio.Client(reconnection=False)
        self.error = None
        self.done = threading.Event()

        def on_error(data=None):
            self.error = data
            self.done.set()

        self.client.on("connect_error", on_error, namespace=namespace)
        try:
            self.client.connect(url, auth=auth, namespaces=[namespace], transports=["websocket"], wait_timeout=10)
            self.connected = True
        except socketio.exceptions.ConnectionError:
            self.connected = False
        self.done.wait(5)

    @property
    def code(self) -> str | None:
        data = self.error
        if isinstance(data, dict) and "data" in data and isinstance(data["data"], dict):
            data = data["data"]
        return data.get("code") if isinstance(data, dict) else None

    def close(self):
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture(scope="module")
def signed_node():
    yield from serve_memory_node("chat-auth", {"AUTH_JWT_SECRET": SECRET})


def test_a_valid_token_names_the_user_and_set_name_is_refused(signed_node):
    user = ChatUser(signed_node.url, auth={"token": mint(name="Ann"), "name": "Mallory"})
    try:
        user.wait_for(lambda: user.welcomes)
        assert user.welcomes[0]["name"] == "Ann"
        reply = user.client.call("set-name", "Bob", timeout=5)
        assert reply["ok"] is False and reply["error"]["code"] == "name_from_token"
        user.send("hello")
        user.wait_for(lambda: user.messages)
        assert user.messages[-1]["name"] == "Ann"
    finally:
        user.close()


def test_sub_is_the_name_when_the_token_has_none(signed_node):
    user = ChatUser(signed_node.url, auth={"token": mint(name=None, sub="zoe")})
    try:
        user.wait_for(lambda: user.welcomes)
        assert user.welcomes[0]["name"] == "zoe"
    finally:
        user.close()


@pytest.mark.parametrize("auth, code", [
    (None, "token_missing"),
    ({"name": "Ann"}, "token_missing"),
    ({"token": 42}, "token_malformed"),
    ({"token": "not-a-jwt"}, "token_malformed"),
    ({"token": "a.b.c"}, "token_malformed"),
    ({"token": "x" * 5000}, "token_too_large"),
    ({"token": mint(ttl=-60)}, "token_expired"),
    ({"token": mint(key=OTHER_SECRET)}, "token_signature"),
    ({"token": mint(algorithm="HS384")}, "token_algorithm"),
    ({"token": jwt.encode({"sub": "ann", "exp": int(time.time()) + 60}, None, algorithm="none")}, "token_algorithm"),
    ({"token": mint(exp=None)}, "token_claims"),
    ({"token": mint(name="x" * 200)}, "token_claims"),
    ({"token": mint(name="\u202eevil", sub=None)}, "token_claims"),
    ({"token": mint(name=None, sub=None)}, "token_claims"),
    ({"token": mint(admin="yes")}, "token_claims"),
], ids=["no-auth", "name-only", "number", "garbage", "bad-base64", "too-large", "expired", "wrong-key",
        "other-alg", "alg-none", "no-exp", "long-name", "control-name", "no-name", "bad-admin-claim"])
def test_bad_tokens_are_refused_with_a_reason(signed_node, auth, code):
    attempt = Refusal(signed_node.url, auth)
    try:
        assert not attempt.connected
        assert attempt.code == code, attempt.error
    finally:
        attempt.close()
    assert signed_node.is_alive()


def test_anonymous_names_stay_the_default_without_auth_options():
    node = start_chat("chat-open", "--adapter", "memory")
    try:
        user = ChatUser(node.url, name="Guesty")
        user.wait_for(lambda: user.welcomes)
        assert user.welcomes[0]["name"] == "Guesty"
        assert user.client.call("set-name", "Other", timeout=5)["ok"] is True
        user.close()
    finally:
        node.stop()


def _recoverable_session(url: str, token: str):
    """A raw client that connects, receives one logged packet (its offset) and drops its
    transport without saying goodbye: the session waits for recovery."""
    raw = RawWebSocket(url)
    raw.send_text("40" + json.dumps({"token": token}))
    reply = raw.receive_until(lambda f: f.startswith("40{"))
    session = json.loads(reply[2:])
    raw.send_text('42["message","before the drop"]')
    frame = raw.receive_until(lambda f: f.startswith('42["message"'))
    offset = json.loads(frame[2:])[-1]
    raw.ws.sock.close()  # an abrupt loss, not a DISCONNECT packet
    return session["sid"], session["pid"], offset


def _claim(url: str, auth: dict) -> str:
    raw = RawWebSocket(url)
    try:
        raw.send_text("40" + json.dumps(auth))
        return raw.receive_until(lambda f: f.startswith("40") or f.startswith("44"))
    finally:
        raw.close()


def test_a_recovered_session_checks_the_token_again(signed_node):
    # The same token, valid at first, expires while the client is away.
    token = mint(name="Ann", ttl=2)
    sid, pid, offset = _recoverable_session(signed_node.url, token)
    time.sleep(3.2)
    reply = _claim(signed_node.url, {"token": token, "pid": pid, "offset": offset})
    assert reply.startswith("44"), f"an expired token recovered its session: {reply}"
    assert json.loads(reply[2:])["data"]["code"] == "token_expired"

    # A fresh token recovers the session (same socket id), and its name is the one used.
    sid, pid, offset = _recoverable_session(signed_node.url, mint(name="Ann"))
    reply = _claim(signed_node.url, {"token": mint(name="Ann B"), "pid": pid, "offset": offset})
    assert reply.startswith("40{"), reply
    assert json.loads(reply[2:])["sid"] == sid


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_jwks_keys_verify_rs256_and_es256(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_public, ec_public = rsa_key.public_key().public_numbers(), ec_key.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": _b64(rsa_public.n), "e": _b64(rsa_public.e)},
        {"kty": "EC", "kid": "e1", "alg": "ES256", "use": "sig", "crv": "P-256",
         "x": _b64(ec_public.x).rjust(43, "A"), "y": _b64(ec_public.y).rjust(43, "A")},
    ]}
    keys_file = tmp_path / "jwks.json"
    keys_file.write_text(json.dumps(jwks))
    node = start_chat("chat-jwks", "--adapter", "memory", env={"AUTH_JWT_KEYS": str(keys_file)})
    try:
        for key, algorithm, kid, name in ((rsa_key, "RS256", "r1", "Rita"), (ec_key, "ES256", "e1", "Eve")):
            user = ChatUser(node.url, auth={"token": mint(name=name, key=key, algorithm=algorithm, headers={"kid": kid})})
            user.wait_for(lambda: user.welcomes)
            assert user.welcomes[0]["name"] == name
            user.close()
        # HS256 "signed" with the public key's text: the classic algorithm confusion.
        confused = hs256_with_key_text(json.dumps(jwks["keys"][0]), {"sub": "x", "exp": int(time.time()) + 60}, "r1")
        attempt = Refusal(node.url, {"token": confused})
        assert not attempt.connected and attempt.code == "token_algorithm", attempt.error
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        attempt = Refusal(node.url, {"token": mint(key=other, algorithm="RS256", headers={"kid": "r1"})})
        assert not attempt.connected and attempt.code == "token_signature", attempt.error
    finally:
        node.stop()


def test_chat_token_mints_a_token_the_node_accepts(signed_node):
    import subprocess
    from chat.conftest import chat_binary
    done = subprocess.run([str(chat_binary()), "token", "--name", "Ann", "--ttl", "60"], capture_output=True, text=True,
                          timeout=30, env={"AUTH_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["name"] == "Ann" and claims["exp"] - time.time() <= 61
    user = ChatUser(signed_node.url, auth={"token": token})
    user.wait_for(lambda: user.welcomes)
    assert user.welcomes[0]["name"] == "Ann"
    user.close()
    short = subprocess.run([str(chat_binary()), "token", "--name", "Ann"], capture_output=True, text=True, timeout=30,
                           env={"AUTH_JWT_SECRET": "short", "PATH": "/usr/bin:/bin"})
    assert short.returncode != 0 and "32 bytes" in short.stderr
