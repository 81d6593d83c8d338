"""Serve a host name of the seeds' examples (e.g. newhost.example.com) from a real loopback server."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from datasources.connectors import egress


class Forwarder:
    """Listens on ``bind`` and pipes every connection to ``target`` (a stand-in for a remote server)."""

    def __init__(self, bind: tuple[str, int], target: tuple[str, int]):
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(bind)
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True, name="compat-forward").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                return
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True, name="compat-forward").start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread up
        except OSError:
            pass
        self.sock.close()


@contextmanager
def served_as(monkeypatch, name: str, port: int, cluster) -> Iterator[None]:
    """Make ``name:port`` resolve to a free loopback address that reaches the PostgreSQL ``cluster``."""
    rng = random.Random()
    for _ in range(20):  # the port is the seed's; a random 127/8 address keeps parallel runs apart
        ip = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        try:
            forwarder = Forwarder((ip, port), (cluster.host, cluster.port))
            break
        except OSError:
            continue
    else:
        pytest.skip(f"no free loopback address for port {port}")
    real = egress._getaddrinfo
    monkeypatch.setattr(egress, "_getaddrinfo", lambda h, p, t: [ip] if h == name else real(h, p, t))
    try:
        yield
    finally:
        forwarder.close()


