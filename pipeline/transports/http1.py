"""One HTTP/1.1 exchange at a time on a kept-alive socket: the request written
in one piece, the answer read whole.

    connection = open_connection(host, port, timeout=, read_timeout=, context=)
    status, headers, body = connection.exchange(head, body)
    connection.will_close        the server said it closes (or must, to end
                                 the body): do not use it again
    connection.dropped()         an idle connection the server closed (it
                                 reads as readable), as urllib3 checks

It does for a sender what :mod:`http.client` does, for a fraction of the
CPU: no file object over the socket, no :mod:`email` parser for the
headers; the request line, the headers and the body go out in one
``sendall``. The answer's body is read by ``Content-Length``, by chunks
(``Transfer-Encoding: chunked``) or, with neither, until the server closes;
interim 1xx answers are skipped. What goes wrong is raised as the socket
raises it (:class:`TimeoutError`, :class:`OSError`) or, for an answer that
is not HTTP or ends early, as :class:`BadAnswer`.
"""

from __future__ import annotations

import socket
import ssl

MAX_HEAD = 65536
"""The most bytes an answer's status line and headers may take."""
READ = 65536


class BadAnswer(Exception):
    """The server's answer was not HTTP/1.x, or it ended before it was whole:
    an internal signal, which the SES client raises as botocore's error."""


def request_head(method: str, path: str, headers: list[tuple[str, str]]) -> bytes:
    """The request line and headers, as :mod:`http.client` writes them;
    ValueError for a header that would break the request (a CR or LF)."""
    lines = [f"{method} {path} HTTP/1.1"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"Invalid header {name!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Connection:
    """A socket to one server, one exchange at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.will_close = False
        self._buffer = bytearray()

    def exchange(self, head: bytes, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send a request (``head`` from :func:`request_head`, then ``body``)
        and read its answer: status, headers, body."""
        sock = self.sock
        if sock is None:
            raise BadAnswer("the connection is closed")
        sock.sendall(head + body)
        while True:
            status, version, headers = self._read_head()
            if not 100 <= status < 200:
                break
        names = {name.lower(): value for name, value in headers}
        tokens = {t.strip().lower() for t in names.get("connection", "").split(",")}
        self.will_close = "close" in tokens or (
            version == "HTTP/1.0" and "keep-alive" not in tokens
        )
        if status in (204, 304):
            answer = b""
        elif "chunked" in names.get("transfer-encoding", "").lower():
            answer = self._read_chunked()
        elif "content-length" in names:
            try:
                length = int(names["content-length"])
            except ValueError:
                raise BadAnswer(f"bad Content-Length: {names['content-length']!r}") from None
            answer = self._read_exactly(length)
        else:
            answer = self._read_to_end()
            self.will_close = True
        return status, headers, answer

    def dropped(self) -> bool:
        """True when this idle connection can no longer be used: the server
        closed it, or sent bytes nobody asked for (both read as readable)."""
        import select

        if self.sock is None or self._buffer or self.will_close:
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    # -- reading ---------------------------------------------------------------

    def _fill(self) -> None:
        """Read what the server sent next into the buffer; BadAnswer at its end."""
        assert self.sock is not None
        data = self.sock.recv(READ)
        if not data:
            raise BadAnswer("the server closed the connection before answering in full")
        self._buffer += data

    def _read_head(self) -> tuple[int, str, list[tuple[str, str]]]:
        buffer = self._buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise BadAnswer("the answer's headers are too long")
            self._fill()
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest.partition(" ")[0]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise BadAnswer(f"not an HTTP answer: {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers.append((name.strip(), value.strip()))
        return int(code), version, headers

    def _read_exactly(self, length: int) -> bytes:
        while len(self._buffer) < length:
            self._fill()
        answer = bytes(self._buffer[:length])
        del self._buffer[:length]
        return answer

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise BadAnswer("a chunk's size line is too long")
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = self._read_line().partition(b";")[0].strip()
            try:
                length = int(size, 16)
            except ValueError:
                raise BadAnswer(f"bad chunk size: {size[:20]!r}") from None
            if length == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(length))
            if self._read_exactly(2) != b"\r\n":
                raise BadAnswer("a chunk does not end in CRLF")

    def _read_to_end(self) -> bytes:
        assert self.sock is not None
        while data := self.sock.recv(READ):
            self._buffer += data
        answer = bytes(self._buffer)
        self._buffer.clear()
        return answer


def open_connection(
    host: str,
    port: int,
    *,
    timeout: float,
    read_timeout: float,
    context: ssl.SSLContext | None = None,
) -> Connection:
    """A connection to ``host``:``port``, TLS over it with ``context``
    (checking the certificate against ``host``); connecting (and the TLS
    handshake) within ``timeout`` seconds, each read and write after that
    within ``read_timeout``."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        sock.settimeout(read_timeout)
    except BaseException:
        sock.close()
        raise
    return Connection(sock)


__all__ = ["BadAnswer", "Connection", "open_connection", "request_head"]
