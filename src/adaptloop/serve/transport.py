"""Transport limits of ``adaptloop serve``: what one connection may cost the server.

uvicorn's HTTP protocol (httptools) accepts request headers of any size and waits for a slow
body as long as the client keeps the connection open; 500 connections that stall mid-body
then hold 500 sockets and their buffers forever. :class:`LimitedHttpTools` is that protocol
with two limits, and :func:`run` starts uvicorn with them and with a concurrency limit:

============================  ==================  =========================================
limit                         default             when exceeded
============================  ==================  =========================================
header bytes per request      64 KiB              ``431`` and the connection is closed
request read deadline         10 s                ``408`` and the connection is closed
(headers and body, from the
first byte of the request)
concurrent connections/tasks  1,000               ``503`` (uvicorn's ``limit_concurrency``)
idle keep-alive               5 s                 the connection is closed
body size                     1,000,000 bytes     ``413`` (:mod:`adaptloop.serve.app`)
============================  ==================  =========================================

A connection that opens and sends nothing is closed after the read deadline too.

>>> limits = TransportLimits()
>>> limits.max_header_bytes, limits.read_timeout, limits.max_connections
(65536, 10.0, 1000)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adaptloop.parameters import ParameterError, check_parameters
from adaptloop.serve.errors import InputError
from adaptloop.validation import Count, PositiveReal


@dataclass(frozen=True)
class TransportLimits:
    """The limits of one server (see the module docstring)."""

    max_header_bytes: Count = 64 * 1024
    """Request line and headers of one request, in bytes."""
    read_timeout: PositiveReal = 10.0
    """Seconds from a request's first byte (or a new connection) to its last body byte."""
    max_connections: Count = 1000
    """Concurrent connections (and requests) before new ones are answered 503."""
    keep_alive: PositiveReal = 5.0
    """Seconds an idle keep-alive connection stays open."""

    def __post_init__(self) -> None:
        given = {name: getattr(self, name) for name in self.__dataclass_fields__}
        try:
            check_parameters(TransportLimits, given)
        except ParameterError as error:
            raise InputError(error.path, error.reason) from None


def _plain_response(status: int, reason: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s"
        % (status, reason, len(message), message)
    )


class LimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a read deadline (the
    limits come from the class attribute ``limits``: :func:`protocol` makes a subclass)."""

    limits = TransportLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._reading = False

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, reason: bytes, message: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_plain_response(status, reason, message))
            self.transport.close()

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete and not self._reading:
            return  # the request was read in time: its answer is being computed
        self._refuse(408, b"Request Timeout", b"request not received within the read deadline")

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading = True
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._header_bytes = 0
        self._reading = True
        if self._deadline is None:
            self._arm()
        super().on_message_begin()

    def _count(self, n: int) -> bool:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, b"Request Header Fields Too Large", b"request headers too large")
            return False
        return True

    def on_url(self, url: bytes) -> None:
        if self._count(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count(len(name) + len(value) + 4):
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.transport.is_closing() or self.cycle is None:
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._reading = False
        self._disarm()
        if self.transport.is_closing() or self.cycle is None:
            return
        super().on_message_complete()


def protocol(limits: TransportLimits) -> type[LimitedHttpTools]:
    """A :class:`LimitedHttpTools` class with ``limits``."""
    return type("LimitedHttpTools", (LimitedHttpTools,), {"limits": limits})


def run(app: Any, host: str, port: int, limits: TransportLimits | None = None) -> None:
    """Serve ``app`` with uvicorn on ``host:port`` with ``limits`` (defaults: the table)."""
    import uvicorn

    limits = limits or TransportLimits()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=protocol(limits),
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive,
    )
