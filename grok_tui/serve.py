"""`grok-tui serve`: the viewer in a browser, served the way Jupyter serves a notebook.

textual-serve runs one app process per browser connection and pipes its screen over a
websocket. On its own it trusts whoever connects: any web page open in the user's browser
could open `ws://localhost:PORT/ws` and drive the viewer, and every connection starts
another process. This server adds:

- a random token in the URL (printed at start): the page lives at `/TOKEN/` and its
  websocket at `/TOKEN/ws`; anything else is 403;
- the Origin of a websocket checked against the Host it was sent to (a page elsewhere
  cannot use the user's browser to connect), and the Host checked against the addresses
  served (against DNS rebinding);
- at most `max_sessions` app processes at once (503 beyond);
- app processes that never outlive their session or the server: started without a shell
  in their own process group, killed (group and all) when the session ends or the server
  stops, and, against a `kill -9` of the server, run by a driver that has the kernel kill
  it with its parent (`PR_SET_PDEATHSIG`) and exits on EOF or a broken pipe besides
  (`ui/viewer_driver.py`);
- viewers that cannot write into the run directory unless `--allow-writes`: the run is
  opened read-only (progress measures are kept in memory, screenshots go to the browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from grok_tui.errors import UsageError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
PAGE_TEMPLATES = Path(__file__).parent / "serve_page"
QUIT_GRACE_S = 5.0  # how long an app has to quit before its process group is killed


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ViewerService(AppService):
    """One app process for one browser session: no shell, its own process group, tied to
    the server's life, and killed if it does not quit when the session ends."""

    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv = list(argv)

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        env = super()._build_environment(width, height)
        # Our driver: it dies with the server (PR_SET_PDEATHSIG, set by the child itself),
        # and with its session (EOF, a broken pipe).
        env["TEXTUAL_DRIVER"] = "grok_tui.ui.viewer_driver:ViewerDriver"
        env["GROK_TUI_SERVER_PID"] = str(os.getpid())
        return env

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,  # no shell between: the server is the app's parent
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,  # its own process group: killed as one
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """Ask the app to quit; kill its process group if it has not within a few seconds."""
        process = self._process
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(super().stop(), QUIT_GRACE_S)
        if process is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), QUIT_GRACE_S)
            self.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), QUIT_GRACE_S)

    def kill(self) -> None:
        """Kill the app and anything it started (its process group)."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)


class ViewerServer(Server):
    """textual-serve's Server with a token, Origin and Host checks, a session cap, and
    app processes tied to their sessions and to the server."""

    def __init__(
        self,
        argv: Sequence[str],
        host: str = "localhost",
        port: int = 8000,
        title: str | None = None,
        max_sessions: int = 4,
        token: str | None = None,
    ) -> None:
        super().__init__(" ".join(argv), host=host, port=port, title=title)
        self.argv = list(argv)
        self.max_sessions = max_sessions
        self.token = token or secrets.token_urlsafe(24)
        self.sessions: set[ViewerService] = set()
        # Our page (a title, the font served from here): textual-serve's static folder stays.
        self.templates_path = PAGE_TEMPLATES

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{self.token}/"

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        import aiohttp_jinja2
        import jinja2

        aiohttp_jinja2.setup(
            app, loader=jinja2.FileSystemLoader(self.templates_path), autoescape=True
        )
        app.add_routes(
            [
                web.get(f"/{self.token}/", self.handle_index, name="index"),
                web.get(f"/{self.token}/ws", self.handle_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, show_index=False, name="static"),
            ]
        )
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Host, Origin and session cap, before any page or websocket is served."""
        host = (request.host or "").rsplit(":", 1)[0]
        if not self._host_allowed(host):
            return web.Response(status=403, text="unknown Host\n")
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text="cross-origin request refused\n")
        return await handler(request)

    def _host_allowed(self, host: str) -> bool:
        """The Host header names this server: a loopback name when it serves loopback,
        anything when it serves every interface (the token still guards), else its name."""
        if is_loopback(self.host):
            return is_loopback(host)
        if self.host in ("0.0.0.0", "::", ""):
            return True
        return host.strip("[]") == self.host.strip("[]")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        # Links in the page use the address the browser used (an SSH tunnel's local
        # port, say), which the guard has checked.
        self.public_url = f"http://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        """One session: an app process, its screen over the websocket, killed at the end."""
        if len(self.sessions) >= self.max_sessions:
            return web.Response(status=503, text=f"at most {self.max_sessions} sessions\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _int(request.query.get("width"), 80)
        height = _int(request.query.get("height"), 24)
        service = ViewerService(
            self.argv,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
            debug=self.debug,
        )
        self.sessions.add(service)  # before any await: the cap holds for a burst too
        try:
            await websocket.prepare(request)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:  # a malformed message from the browser ends its session
            with contextlib.suppress(Exception):
                await websocket.close()
        finally:
            await service.stop()
            self.sessions.discard(service)
        return websocket

    async def on_startup(self, app: web.Application) -> None:
        print(f"grok-tui: serving the viewer of {self.title} at", file=sys.stderr)
        print(f"    {self.url}", file=sys.stderr)
        print("grok-tui: (the token in the URL is the key: share it only with whom you "
              "would let view this run; ctrl+c stops)", file=sys.stderr)  # fmt: skip

    async def on_shutdown(self, app: web.Application) -> None:
        for service in list(self.sessions):
            service.kill()


def _int(value: str | None, default: int) -> int:
    try:
        return max(1, min(int(value or default), 1000))
    except ValueError:
        return default


def check_bindable(host: str, port: int) -> None:
    """Bind and let go of `host`:`port` before serving, so that an address this machine
    does not have, or a port in use, is one line (UsageError) before the URL is printed,
    not the server's traceback after it. As the server binds (asyncio's create_server):
    every address the host resolves to, SO_REUSEADDR; one this machine lacks (`localhost`
    as ::1 where IPv6 is off) is skipped; refused when one is in use or none could be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {host}: {getattr(exc, 'strerror', None) or exc}") from None
    bound, why = 0, "no address to bind"
    for family, kind, proto, _, address in infos:
        try:
            probe = socket.socket(family, kind, proto)
        except OSError as exc:  # a family this machine does not support
            why = exc.strerror or str(exc)
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                bound += 1
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:  # in use, not allowed: refused
                    raise UsageError(f"cannot serve at {host}:{port}: {exc.strerror}") from None
                why = exc.strerror or str(exc)
    if not bound:
        raise UsageError(f"cannot serve at {host}:{port}: {why}")


def serve_viewer(
    run_path: Path,
    title: str,
    host: str,
    port: int,
    max_sessions: int,
    allow_writes: bool,
) -> None:
    """Serve `grok-tui open RUN --viewer` until interrupted."""
    argv = [sys.executable, "-m", "grok_tui", "open", str(run_path), "--viewer"]
    if allow_writes:
        argv.append("--allow-writes")
    check_bindable(host, port)
    if not is_loopback(host):
        print(
            f"grok-tui: warning: --host {host} makes this run reachable from the network; "
            "anyone with the URL (and its token) can view it",
            file=sys.stderr,
        )
    ViewerServer(argv, host=host, port=port, title=title, max_sessions=max_sessions).serve()
