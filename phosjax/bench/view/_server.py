"""The viewer's HTTP server: the page's static files and the bench's data as JSON.

It serves nothing but the files of its package's ``static/`` folder and the JSON built
from the bench directory; any path that climbs out (``..``, encoded or not, absolute,
a symlink out of the bench) is refused with 403. Bound to a loopback address, it also
refuses requests for host names other than ``localhost`` and loopback addresses (DNS
rebinding).
"""

import errno
import http.server
import numbers
import pathlib
import re
import socket
import sys
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from phosjax._addresses import ip_address
from phosjax._callables import a_type, cut_repr
from phosjax._nearest import did_you_mean, nearest
from phosjax.bench import _layout
from phosjax.bench._reading import LET_READ, READ_REFUSED
from phosjax.bench.view import _api
from phosjax.bench.view._bench import (
    BenchFiles,
    BrokenFileError,
    NotABenchError,
    NotStartedError,
    OutsideBenchError,
    holds_a_run,
    not_started,
    vanished,
)

STATIC = pathlib.Path(__file__).parent / "static"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_MODEL_ROUTE = re.compile(r"/api/([^/]+)/([^/]+)")
"""The shape of a model's route: ``/api/<kind>/<model_id>``."""
_MODEL_FOLDERS = {"blurb": _layout.BLURBS, "graph": _layout.GRAPHS}
"""The folder of each kind of a model's route."""
_QUERY_PARAMETERS = {"/api/results": ("columns", "cells", "max_points")}
"""The query parameters each endpoint takes (the others take none)."""
_READS = 4
"""How many times a request reads the bench while files it found vanish before it reads
them (`_Handler._json`)."""
ADDRESSES = "--host 127.0.0.1 (this machine only) or --host 0.0.0.0 (everyone who can reach it)"
"""The addresses to give where the one given cannot be bound (or is none)."""
_MAX_REQUEST_LINE = 65536
"""The longest request line (method, path and query) `http.server` reads: 414 past it."""
_MAX_DIGITS = 18
"""The most digits an integer query parameter may have (more is no count of anything)."""


class PortInUseError(OSError):
    """The port asked for is taken (the message suggests a free one).

    Examples:
      >>> import pathlib, tempfile
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> first = make_server(bench, port=0)
      >>> make_server(bench, port=first.server_address[1])
      Traceback (most recent call last):
      phosjax.bench.view._server.PortInUseError: Port ... on 127.0.0.1 is already in use
      (another viewer?). Try --port ....
      >>> first.server_close()
    """


class CannotServeError(OSError):
    """The address cannot be bound (an unknown host name, an address not of this machine,
    a port outside 0 to 65535).

    Examples:
      >>> import pathlib, tempfile
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> make_server(bench, port=80000)
      Traceback (most recent call last):
      phosjax.bench.view._server.CannotServeError: cannot serve on 127.0.0.1:80000: a port is
      a number from 0 to 65535 (0: any free one).
    """


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (``127.0.0.2`` too).

    Examples:
      >>> _is_loopback("127.0.0.2"), _is_loopback("::1"), _is_loopback("example.com")
      (True, True, False)
    """
    address = ip_address(host)
    return host == "localhost" if address is None else address.is_loopback


def _is_everywhere(host: str) -> bool:
    """Whether binding ``host`` listens on every interface (``0.0.0.0``, ``::``; an empty
    one would too, but `make_server` refuses it).

    Examples:
      >>> _is_everywhere("0.0.0.0"), _is_everywhere("::"), _is_everywhere("localhost")
      (True, True, False)
    """
    address = ip_address(host)
    return address is not None and address.is_unspecified


def _unbracketed(host: str) -> str:
    """``host`` without the brackets an IPv6 address takes in a URL (``[::1]``: ``::1``).

    Examples:
      >>> _unbracketed("[::1]"), _unbracketed("::1"), _unbracketed("localhost")
      ('::1', '::1', 'localhost')
    """
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def empty_host(host: str) -> bool:
    """Whether ``host`` names no address: empty or blank, in brackets too (``[]``), which
    the socket would bind to every interface, serving everyone.

    Examples:
      >>> empty_host(""), empty_host("  "), empty_host("[]"), empty_host("[::1]")
      (True, True, True, False)
    """
    return not _unbracketed(host.strip()).strip()


def _free_port_near(host: str, port: int, tries: int = 50) -> int | None:
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
            return candidate
    return None


def _bind_hint(error: OSError, port: int) -> str:
    """What to give instead where binding failed with ``error`` (not a port in use): an
    address of this machine for a host that is none or does not resolve, a port from
    1024 for one the system keeps for root; "" where the reason says all there is.

    Examples:
      >>> print(_bind_hint(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), 0))
      ; give an address of this machine: --host 127.0.0.1 (this machine only) or --host
      0.0.0.0 (everyone who can reach it)
      >>> print(_bind_hint(PermissionError(errno.EACCES, "Permission denied"), 80))
      ; a port below 1024 needs root: try --port 1337, or --port 0 (any free one)
      >>> _bind_hint(PermissionError(errno.EACCES, "Permission denied"), 8080)
      ''
    """
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return f"; give an address of this machine: {ADDRESSES}"
    if error.errno == errno.EACCES and 0 < port < 1024:
        return "; a port below 1024 needs root: try --port 1337, or --port 0 (any free one)"
    return ""


def _colon_misplaced(host: str) -> str | None:
    """Why ``host`` (without brackets) is no address to bind where it holds a ``:`` but
    is no IPv6 address (a port or a URL's scheme with it: the socket said the name was
    not known, shown as an IPv6 address), and what to give instead; None otherwise.

    Examples:
      >>> print(_colon_misplaced("127.0.0.1:8080"))
      no address but an IPv6 one holds ':'; give the port apart: --host 127.0.0.1 --port 8080
      >>> print(_colon_misplaced("http://localhost:8080"))
      no address but an IPv6 one holds ':'; give the port apart: --host localhost --port 8080
      >>> _colon_misplaced("::1") is None, _colon_misplaced("localhost") is None
      (True, True)
    """
    if ":" not in host or ip_address(host) is not None:
        return None
    name, _, port = host.split("://")[-1].rpartition(":")  # without a URL's scheme
    instead = (
        f"give the port apart: --host {_unbracketed(name)} --port {port}"
        if name and port.isdigit()
        else f"give the address alone: {ADDRESSES}"
    )
    return f"no address but an IPv6 one holds ':'; {instead}"


def _check_arguments(directory: Any, host: Any, port: Any) -> None:
    """Raises a `TypeError` naming the argument of `make_server` of the wrong type (the
    socket's own errors name none; ``port=True``, an int, would bind port 1)."""
    _layout.check_directory(directory)
    wrong = [
        ("host", host, isinstance(host, str), "the address to bind, a str such as '127.0.0.1'"),
        ("port", port, isinstance(port, numbers.Integral) and not isinstance(port, bool), "an "
         "int from 0 to 65535 (0: any free one)"),
    ]  # fmt: skip
    for name, value, right, what in wrong:
        if not right:
            raise TypeError(f"{name} must be {what}, got {a_type(value)}: {cut_repr(value, 80)}.")


class ViewerServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that holds the bench it shows.

    Attributes:
      directory: the bench directory, as given.
      url: the address to open in a browser (bound to every interface, ``0.0.0.0`` or
        ``::``: this machine's loopback address, which a browser can open).
      everywhere: bound to every interface (`url` then opens it on this machine only).
      local_only: bound to a loopback address (it then answers only requests for
        ``localhost`` or a loopback address).

    Examples:
      `make_server` binds one; ``serve_forever`` runs it:

      >>> import pathlib, tempfile
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> server = make_server(bench, port=0)
      >>> server.url
      'http://127.0.0.1:.../'
      >>> server.bench.root == bench.resolve(), server.local_only, server.everywhere
      (True, True, False)
      >>> server.server_close()
    """

    daemon_threads = True

    def __init__(self, directory: str | pathlib.Path, host: str, port: int) -> None:
        _check_arguments(directory, host, port)
        if empty_host(host):
            raise ValueError(
                f"host {host!r} is empty; give the address to bind, e.g. '127.0.0.1' (this "
                "machine only, the default) or '0.0.0.0' (everyone who can reach it)."
            )
        port = int(port)  # a NumPy one would read np.int64(80000) in messages
        self.directory = pathlib.Path(directory)
        self._bench: BenchFiles | None = None
        self._lost = False  # the bench read so far is gone (`bench`)
        not_started(self.directory)  # NotABenchError where no bench can start there
        host = _unbracketed(host)
        misplaced = _colon_misplaced(host)
        if misplaced is not None:
            raise CannotServeError(f"cannot serve on host {host!r}: {misplaced}.")
        self.local_only = _is_loopback(host)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        shown = f"[{host}]" if ":" in host else host
        if not 0 <= port <= 65535:  # socket's bind raises OverflowError, no OSError
            raise CannotServeError(
                f"cannot serve on {shown}:{port}: a port is a number from 0 to 65535 "
                "(0: any free one)."
            )
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:  # socket.gaierror too: a host name that does not resolve
            if error.errno != errno.EADDRINUSE:
                reason = f"{error.strerror or error}{_bind_hint(error, port)}"
                raise CannotServeError(f"cannot serve on {shown}:{port}: {reason}") from error
            near = _free_port_near(host, port)
            hint = f"--port {near}" if near else "--port 0 (any free port)"
            message = f"Port {port} on {host} is already in use (another viewer?). Try {hint}."
            raise PortInUseError(message) from None
        self.everywhere = _is_everywhere(host)
        if self.everywhere:  # no browser opens http://0.0.0.0:PORT/ on every system
            shown = "[::1]" if ":" in host else "127.0.0.1"
        self.url = f"http://{shown}:{self.server_address[1]}/"

    @property
    def bench(self) -> BenchFiles:
        """The bench's files; until a bench starts in `directory`, `NotStartedError` saying
        so (`not_started`), and `NotABenchError` where none can start there any more. A
        bench removed since (deleted to start it over, or moved) is waited for again, the
        message saying first that the bench shown so far is gone."""
        if self._bench is not None and not holds_a_run(self._bench.root):
            self._bench, self._lost = None, True  # its caches were of the files gone
        if self._bench is None:
            waiting = not_started(self.directory)
            if waiting is not None:
                gone = "the bench shown so far is gone (deleted or moved); "
                raise NotStartedError(f"{gone if self._lost else ''}{waiting}")
            self._bench, self._lost = BenchFiles(self.directory), False
        return self._bench

    def waiting_for(self) -> str | None:
        """Why the viewer waits for the bench (`not_started`, or why none can start there
        now: a file no bench writes put in its folder), None once it is there.

        Examples:
          >>> import pathlib, tempfile
          >>> folder = pathlib.Path(tempfile.mkdtemp())
          >>> server = make_server(folder, port=0)
          >>> server.waiting_for()
          "waiting for the bench to start in '...' (no bench.json yet)"
          >>> _ = (folder / "bench.json").write_text('{"format": 1}')
          >>> server.waiting_for() is None
          True
          >>> server.server_close()
        """
        try:
            _ = self.bench  # read once it is there
        except NotABenchError as error:
            return str(error)
        return None

    def banner(self) -> str:
        """What `serve` prints: where the viewer is; bound to every interface, the address
        others reach it at (this machine's host name); before the bench starts, that it
        waits for it (`waiting_for`).

        Examples:
          >>> import pathlib, tempfile
          >>> bench = pathlib.Path(tempfile.mkdtemp())
          >>> _ = (bench / "bench.json").write_text('{"format": 1}')
          >>> server = make_server(bench, port=0, host="0.0.0.0")
          >>> print(server.banner())
          Viewing ... at http://127.0.0.1:... (this machine); listening on all interfaces,
          others open http://...:.../  (Ctrl-C stops)
          >>> server.server_close()
        """
        text = f"Viewing {self.directory.resolve()} at {self.url}"
        if self.everywhere:
            port = self.server_address[1]
            text += (
                f" (this machine); listening on all interfaces, others open "
                f"http://{socket.gethostname()}:{port}/"
            )
        waiting = self.waiting_for()
        return f"{text}{'' if waiting is None else f'; {waiting}'}  (Ctrl-C stops)"


def make_server(
    directory: str | pathlib.Path, port: int = 1337, host: str = "127.0.0.1"
) -> ViewerServer:
    """Binds the viewer of the bench in ``directory`` (call ``serve_forever`` to run it).

    Args:
      directory: a bench directory, or one a bench is about to start in (none yet, an
        empty one, or one holding only what a bench writes before its ``bench.json``):
        the page then says it waits, and shows the bench once it starts.
      port: the TCP port (0 for any free one).
      host: the address to bind (an IPv6 one with or without brackets: ``::1``, ``[::1]``);
        the default serves only this machine (reach it from elsewhere through an SSH
        tunnel, ``ssh -L 1337:localhost:1337 HOST``), ``"0.0.0.0"`` everyone who can
        reach it. An empty one, which the socket would bind to every interface, is refused.

    Raises:
      NotABenchError: ``directory`` holds no bench, and none can start there (a file, a
        folder inside a bench, one holding benches or files no bench writes, one it
        cannot list, one under a file, a link to nothing: see `not_started`).
      PortInUseError: the port is taken.
      CannotServeError: the address cannot be bound (say, an unknown host name, one
        with a port, ``localhost:8080``, or a port outside 0 to 65535).
      TypeError: an argument of the wrong type (``port="8080"``), named.
      ValueError: ``host`` is empty (or blank, or ``[]``).

    Examples:
      >>> import json, pathlib, tempfile, threading, urllib.request
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> server = make_server(bench, port=0)
      >>> threading.Thread(target=server.serve_forever, daemon=True).start()
      >>> json.load(urllib.request.urlopen(server.url + "api/cells"))["rows"]
      []
      >>> server.shutdown(); server.server_close()
    """
    return ViewerServer(directory, host, port)


def _parameters(query: str) -> dict[str, str]:
    """The query's parameters by name, each given at most once, their values still
    encoded: a literal comma separates ids, an encoded one (``%2C``) is part of an id."""
    parameters: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        name = urllib.parse.unquote_plus(name)
        if name in parameters:
            raise _api.BadRequest(
                f"Query parameter {name!r} is given more than once; give it once."
            )
        parameters[name] = value
    return parameters


def _ids(parameters: dict[str, str], name: str, what: str | None) -> list[str] | None:
    """The comma-separated ids of parameter ``name`` (None when absent), each decoded;
    ``what`` says in the error of an empty one what it takes (None: an empty one is
    returned, for the endpoint to say what it takes)."""
    if name not in parameters:
        return None
    ids = [urllib.parse.unquote_plus(v) for v in parameters[name].split(",") if v]
    if not ids and what is not None:
        raise _api.BadRequest(f"{name} must name at least one {what}.")
    return ids


def _integer(parameters: dict[str, str], name: str, default: int) -> int:
    """The integer parameter ``name`` (``default`` when absent), in plain decimal digits."""
    text = urllib.parse.unquote_plus(parameters.get(name, str(default)))
    if not (text.isascii() and text.isdigit()):
        raise _api.BadRequest(f"{name} must be an integer in plain decimal digits, got {text!r}.")
    if len(text) > _MAX_DIGITS:  # int() refuses over 4,300 digits
        raise _api.BadRequest(f"{name} must have at most {_MAX_DIGITS} digits, got {len(text)}.")
    return int(text)


def _check_parameters(path: str, parameters: dict[str, str]) -> None:
    """Refuses a query parameter ``path``'s endpoint does not take (say, a typo), naming
    the nearest it takes (`did_you_mean`)."""
    known = _QUERY_PARAMETERS.get(path, ())
    unknown = [name for name in parameters if name not in known]
    if unknown:
        takes = f"it takes {', '.join(known)}" if known else "it takes none"
        hint = did_you_mean(unknown[:1], known) or "."
        raise _api.BadRequest(f"Unknown query parameter {unknown[0]!r} for {path}; {takes}{hint}")


def _failure(error: Exception) -> str:
    """What the page and the log say of ``error``, raised answering a request: a
    `BrokenFileError`'s message (it names the file), else its type and words, where the
    system refused a read (a folder of the bench chmod 000) with what allows it.

    Examples:
      >>> print(_failure(PermissionError(errno.EACCES, "Permission denied", "b/results")))
      PermissionError: [Errno 13] Permission denied: 'b/results'; let this user read it (its
      permissions, those of its folder)
    """
    if isinstance(error, BrokenFileError):
        return str(error)
    refused = isinstance(error, OSError) and error.errno in READ_REFUSED
    return f"{type(error).__name__}: {error}" + (f"; {LET_READ}" if refused else "")


def _refused(path: str) -> str | None:
    """Why the decoded ``path`` is refused (403), None where it is not: a part ``..``
    climbs out of the bench; ``//`` starts an absolute path after a route's prefix
    (``/static//etc/passwd``, ``%2F`` encoded), or is a typo; a backslash or a NUL is in
    no path the viewer answers.

    Examples:
      >>> print(_refused("/static/../../secret.json"))
      climbs out of the bench
      >>> print(_refused("/api//cells"))
      holds '//': an absolute path out of the bench, or an empty part (meant '/api/cells'?)
      >>> print(_refused("/static/app.js\\x00"))
      holds '\\x00', which no path the viewer answers holds
      >>> _refused("/api/cells") is None
      True
    """
    if ".." in path.split("/"):
        return "climbs out of the bench"
    if "//" in path:
        meant = re.sub("/+", "/", path)
        return f"holds '//': an absolute path out of the bench, or an empty part (meant {meant!r}?)"
    odd = next((text for text in ("\\", "\x00") if text in path), None)
    return None if odd is None else f"holds {odd!r}, which no path the viewer answers holds"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "phosjax-viewer"

    def log_message(self, format: str, *args: Any) -> None:  # quiet unless it fails
        del format, args

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        cache: str = "no-store",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for name, value in (_SECURITY_HEADERS | (headers or {})).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, _api.encode({"error": message}), "application/json", headers=headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals as JSON: a method the viewer has no handler for (it
        only reads) is not allowed, 405; a bad request line, 400; one too long, 414, saying
        the limit and what to ask instead; headers too long or too many, 431, with the limit
        (``explain``). The connection closes: the request's body, unread, must not be taken
        for the next request."""
        headers = {"Connection": "close"}
        if message and explain:  # 431's: "got more than 100 headers"
            message = f"{message}: {explain}"
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, headers["Allow"] = HTTPStatus.METHOD_NOT_ALLOWED, "GET, HEAD"
            message = f"Method {self.command} not allowed: the viewer only reads (GET)."
        if code == HTTPStatus.REQUEST_URI_TOO_LONG:
            message = (
                f"Request line longer than {_MAX_REQUEST_LINE // 1024} KiB "
                f"({_MAX_REQUEST_LINE:,} bytes), the most the viewer reads: ask for fewer "
                "cells or columns in each request, in several requests, or leave cells= out "
                "for every cell."
            )
        self._error(code, message or HTTPStatus(code).phrase, headers)

    def _host_allowed(self) -> bool:
        if not self.server.local_only:
            return True
        try:
            host = urllib.parse.urlsplit("//" + self.headers.get("Host", "")).hostname
        except ValueError:  # unparsable (``Host: [``): no name to allow
            return False
        return host is not None and _is_loopback(host)  # a name no DNS can rebind

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        if not self._host_allowed():
            return self._error(
                403,
                "Host not allowed: bound to a loopback address, this viewer answers only "
                "localhost and loopback addresses (use an SSH tunnel, or start it with "
                "--host 0.0.0.0).",
            )
        refused = _refused(path)
        if refused is not None:
            return self._error(403, f"Refused: {path!r} {refused}.")
        try:
            self._route(path, split.query)
        except OutsideBenchError as error:
            self._error(403, str(error))
        except NotABenchError as error:  # no bench yet (the page waits: api/version)
            self._error(503, str(error))
        except _api.NotFound as error:
            self._error(404, str(error))
        except _api.BadRequest as error:
            self._error(400, str(error))
        except ConnectionError:  # the client went away (a page reloaded): no one to answer
            pass
        except Exception as error:  # a broken file in the bench must not kill the server
            message = _failure(error)
            print(f"viewer: {self.path}: {message}", file=sys.stderr)
            self._error(500, message)

    def _json(self, build: Callable[[BenchFiles], Any]) -> None:
        """Sends ``build`` of a `BenchFiles.snapshot` of the bench, built again from a new
        one where a file it found vanished before it was read (a resume dropped a part),
        up to `_READS` times in all (the processes of a bench resumed together each drop
        their group's parts)."""
        for left in reversed(range(_READS)):
            try:
                content = build(self.server.bench.snapshot())
                break
            except Exception as error:
                if not left or not vanished(error):
                    raise
        self._send(200, _api.encode(content), "application/json")

    def _route(self, path: str, query: str) -> None:
        parameters = _parameters(query) if path.startswith("/api/") else {}  # not the page's
        routes: dict[str, Callable[[BenchFiles], Any]] = {
            "/api/bench": _api.bench_info,
            "/api/cells": _api.leaderboard,
            "/api/profile": _api.profile,
            "/api/morph": _api.morph,
            "/api/version": _api.version,
            "/api/results": lambda bench: _api.curves(
                bench,
                _ids(parameters, "cells", "cell id (leave it out for all)"),
                _ids(parameters, "columns", None) or [],  # none: `curves` lists the metrics
                _integer(parameters, "max_points", _api.DEFAULT_POINTS),
            ),
        }
        if path in routes:
            _check_parameters(path, parameters)
            waiting = self.server.waiting_for() if path == "/api/version" else None
            if waiting is not None:
                return self._send(200, _api.encode(_api.waiting(waiting)), "application/json")
            return self._json(routes[path])
        model = _MODEL_ROUTE.fullmatch(path)
        if model and model[1] in _MODEL_FOLDERS:
            _check_parameters(f"/api/{model[1]}/<model_id>", parameters)
            folder = _MODEL_FOLDERS[model[1]]
            return self._json(lambda bench: _api.model_file(bench, folder, model[2]))
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        if path.startswith("/api/"):  # a typo in an address typed or scripted
            known = [*routes, *(f"/api/{kind}/<model_id>" for kind in _MODEL_FOLDERS)]
            hint = did_you_mean([path], routes, cutoff=0.85) or "."  # all share "/api/"
            if model and (kinds := nearest(model[1], _MODEL_FOLDERS)):  # /api/blurbs/m-mlp
                meant = f"/api/{kinds[0]}/{model[2]}"
                hint = f". Did you mean {meant!r}?"
            return self._error(404, f"No such endpoint: {path}; there are {', '.join(known)}{hint}")
        self._error(404, f"No such page: {path}")

    def _static(self, name: str) -> None:
        file = STATIC / name
        if "/" in name or file.suffix not in _CONTENT_TYPES or not file.is_file():
            return self._error(404, f"No such static file: {name}")
        self._send(200, file.read_bytes(), _CONTENT_TYPES[file.suffix], cache="no-cache")


def serve(directory: str | pathlib.Path, port: int = 1337, host: str = "127.0.0.1") -> None:
    """Serves the viewer of the bench in ``directory`` until interrupted (Ctrl-C).

    Args:
      directory: a bench directory, or one a bench is about to start in (as
        `make_server`: it prints that it waits, and shows the bench once it starts).
      port: the TCP port (0 for any free one).
      host: the address to bind (``127.0.0.1``: this machine only).

    Raises:
      NotABenchError, PortInUseError, CannotServeError: as `make_server`.

    Examples:
      It prints where the viewer is, then serves until Ctrl-C (SIGINT), and returns:

      >>> import pathlib, signal, subprocess, sys, tempfile
      >>> bench = pathlib.Path(tempfile.mkdtemp())
      >>> _ = (bench / "bench.json").write_text('{"format": 1}')
      >>> code = f"from phosjax.bench.view import serve; serve({str(bench)!r}, port=0)"
      >>> viewer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
      >>> print(viewer.stdout.readline(), end="")
      Viewing ... at http://127.0.0.1:.../  (Ctrl-C stops)
      >>> viewer.send_signal(signal.SIGINT); viewer.wait(timeout=10); viewer.stdout.close()
      0
    """
    server = make_server(directory, port, host)
    try:  # a Ctrl-C as soon as the address shows stops it as quietly as one later
        print(server.banner(), flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
