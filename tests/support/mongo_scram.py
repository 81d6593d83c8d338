"""The server side of SCRAM-SHA-256 and SCRAM-SHA-1 for the MongoDB stand-in (tests/support/mongo_server.py).

``saslStart`` / ``saslContinue`` (RFC 5802/7677; SHA-1 over MongoDB's ``md5(user:mongo:password)``
digest) against ``users`` in ``auth_db``. A wrong password or an unknown user (after a fake exchange, as
mongod does): error 18 AuthenticationFailed. An empty closing exchange is answered unless the client
asked to skip it (``skipEmptyExchange``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Any

from pymongo.saslprep import saslprep

ITERATIONS = 4096  # the smallest count pymongo accepts: fast tests


@dataclass
class Conn:
    """One connection's login: the user once authenticated, the SCRAM conversation under way."""

    user: str | None = None
    scram: dict[str, Any] = field(default_factory=dict)


def error(code: int, name: str, message: str) -> dict[str, Any]:
    """A command's error reply."""
    return {"ok": 0.0, "errmsg": message, "code": code, "codeName": name}


def _attributes(payload: bytes) -> dict[str, str]:
    return dict(part.split("=", 1) for part in payload.decode().split(",") if "=" in part)


class ScramServer:
    """SCRAM conversations against ``users`` (name -> password) in ``auth_db``, with ``mechanisms`` enabled."""

    def __init__(self, users: dict[str, str], auth_db: str, mechanisms: list[str]):
        self.users = users
        self.auth_db = auth_db
        self.mechanisms = mechanisms
        self.salts = {user: os.urandom(16) for user in users}

    def _keys(self, mechanism: str, user: str) -> tuple[bytes, bytes, str]:
        """(StoredKey, ServerKey, digest) of ``user``; random keys for an unknown user."""
        digest = "sha1" if mechanism == "SCRAM-SHA-1" else "sha256"
        if user not in self.users:
            return os.urandom(32), os.urandom(32), digest
        password = self.users[user]
        md5 = hashlib.md5(f"{user}:mongo:{password}".encode(), usedforsecurity=False).hexdigest()  # SCRAM-SHA-1
        secret = md5 if digest == "sha1" else saslprep(password)
        salted = hashlib.pbkdf2_hmac(digest, secret.encode(), self.salts[user], ITERATIONS)
        client_key = hmac.digest(salted, b"Client Key", digest)
        return hashlib.new(digest, client_key).digest(), hmac.digest(salted, b"Server Key", digest), digest

    def start(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        """``saslStart``: the client-first message answered with the server-first (salt, iterations)."""
        mechanism = str(doc.get("mechanism"))
        if mechanism not in self.mechanisms:
            return error(334, "MechanismUnavailable", f"Received authentication for mechanism {mechanism} which is "
                                                       "unknown or not enabled")
        first = bytes(doc["payload"]).decode()
        bare = first.split(",", 2)[2]
        attributes = _attributes(bare.encode())
        user = attributes["n"].replace("=2C", ",").replace("=3D", "=")
        nonce = attributes["r"] + base64.b64encode(os.urandom(24)).decode()
        salt = self.salts.get(user, os.urandom(16))
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={ITERATIONS}"
        conn.scram = {"user": user, "db": db, "mechanism": mechanism, "nonce": nonce, "skip": bool(
            (doc.get("options") or {}).get("skipEmptyExchange")), "message": f"{bare},{server_first}"}
        return {"conversationId": 1, "done": False, "payload": server_first.encode(), "ok": 1.0}

    def proceed(self, conn: Conn, db: str, doc: dict[str, Any]) -> dict[str, Any]:
        """``saslContinue``: the client proof checked, the server signature sent; ``conn.user`` set on success."""
        state, payload = conn.scram, bytes(doc.get("payload") or b"")
        failed = error(18, "AuthenticationFailed", "Authentication failed.")
        if not state:
            return failed
        if state.get("verified"):  # the empty exchange of a client without skipEmptyExchange
            conn.scram = {}
            return {"conversationId": 1, "done": True, "payload": b"", "ok": 1.0}
        final = payload.decode()
        without_proof, _, proof = final.rpartition(",p=")
        attributes = _attributes(without_proof.encode())
        stored, server_key, digest = self._keys(state["mechanism"], state["user"])
        message = f"{state['message']},{without_proof}".encode()
        signature = hmac.digest(stored, message, digest)
        try:
            client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        except ValueError:
            return failed
        if (attributes.get("r") != state["nonce"] or state["db"] != self.auth_db or state["user"] not in self.users
                or not hmac.compare_digest(hashlib.new(digest, client_key).digest(), stored)):
            conn.scram = {}
            return failed
        conn.user = state["user"]
        verifier = b"v=" + base64.b64encode(hmac.digest(server_key, message, digest))
        if state["skip"]:
            conn.scram = {}
            return {"conversationId": 1, "done": True, "payload": verifier, "ok": 1.0}
        state["verified"] = True
        return {"conversationId": 1, "done": False, "payload": verifier, "ok": 1.0}
