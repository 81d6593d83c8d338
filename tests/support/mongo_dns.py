"""A DNS stand-in for the mongodb+srv tests: SRV/TXT/A/AAAA answered over UDP on 127.0.0.1."""

from __future__ import annotations

import socketserver
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DnsServer:
    """UDP DNS on 127.0.0.1: ``records[(name, type)]`` -> rdata texts; unknown names NXDOMAIN.

    ``queries`` records (name, type) of each question, e.g. ("_mongodb._tcp.cluster0.example.test", "SRV").
    """

    def __init__(self, records: dict[tuple[str, str], list[str]]):
        self.records = {(name.lower().rstrip("."), kind): texts for (name, kind), texts in records.items()}
        self.queries: list[tuple[str, str]] = []
        standin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(standin.answer(data), self.client_address)

        self._server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        if not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif texts := self.records.get((name, kind)):
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", kind, texts))
        return response.to_wire()

    def __enter__(self) -> DnsServer:
        threading.Thread(target=self._server.serve_forever, daemon=True, name="dns-standin").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
