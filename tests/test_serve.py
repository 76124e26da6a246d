"""`grok-tui serve RUN`: the viewer in a browser, with a token, Origin and Host checks, a
session cap, read-only viewers, and app processes that die with their session and server.

Real server processes on loopback addresses only; a websocket client stands in for the
browser (the page's own script connects to the same URL).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer

pytest.importorskip("textual_serve")
aiohttp = pytest.importorskip("aiohttp")

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = Run.create(
        tmp_path_factory.mktemp("serve") / "run",
        RunConfig(p=11, frac_train=0.5, epochs=40, checkpoint_every=10, preset="t"),
        "cpu",
    )
    Trainer(run, "cpu").train()
    return run.path


class Served:
    """A `grok-tui serve` process and the URL it printed."""

    def __init__(self, run_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grok_tui", "serve", str(run_dir), "--port", str(self.port),
             *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.url = ""
        deadline = time.monotonic() + 60
        while not self.url:
            line = self.proc.stderr.readline()
            assert line or self.proc.poll() is None, "the server exited before printing its URL"
            if line.strip().startswith("http://"):
                self.url = line.strip()
            assert time.monotonic() < deadline, "no URL printed"
        self.token = self.url.rstrip("/").rsplit("/", 1)[1]
        self.ws_url = f"ws://localhost:{self.port}/{self.token}/ws?width=100&height=30"
        self.origin = f"http://localhost:{self.port}"

    def get(self, path: str, **headers: str) -> int:
        request = urllib.request.Request(f"http://localhost:{self.port}{path}", headers=headers)
        for _ in range(100):
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server never answered")

    def page(self) -> str:
        with urllib.request.urlopen(f"http://localhost:{self.port}/{self.token}/", timeout=30) as r:
            return r.read().decode()

    def app_pids(self) -> list[int]:
        """Processes whose parent is the server: the app of each session."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(entry))
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def served(trained_run):
    servers: list[Served] = []

    def start(*args: str) -> Served:
        server = Served(trained_run, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def connect(session, url: str, origin: str | None):
    headers = {"Origin": origin} if origin else {}
    return await session.ws_connect(url, headers=headers)


async def read_until(ws, needle: bytes, timeout: float = 90.0) -> bytes:
    received = b""
    deadline = time.monotonic() + timeout
    while needle not in received:
        assert time.monotonic() < deadline, f"{needle!r} never arrived"
        try:
            msg = await ws.receive(timeout=5)
        except asyncio.TimeoutError:
            continue
        if msg.type == aiohttp.WSMsgType.BINARY:
            received += msg.data
        elif msg.type == aiohttp.WSMsgType.TEXT:
            received += msg.data.encode()
        else:
            raise AssertionError(f"the websocket closed: {msg.type}")
    return received


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_page_needs_the_token_and_a_local_host(served) -> None:
    server = served()
    assert server.url.startswith(f"http://localhost:{server.port}/") and len(server.token) >= 24
    assert server.get(f"/{server.token}/") == 200
    assert server.get("/") == 404
    assert server.get(f"/{server.token[:-1]}x/") == 404
    assert server.get(f"/{server.token}/", Host="evil.example") == 403  # DNS rebinding


def test_the_page_has_a_title_and_asks_no_other_host_for_anything(served) -> None:
    server = served()
    assert server.get(f"/{server.token}/") == 200  # waits until the server listens
    page = server.page()
    assert re.search(r"<title>[^<]*run[^<]*</title>", page)
    urls = re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", page)
    hosts = {urlsplit(u if u.startswith("http") else "http:" + u).netloc for u in urls}
    assert hosts <= {f"localhost:{server.port}"}, hosts  # no web font service, no CDN
    font = re.search(r"/static/fonts/[\w.-]+\.ttf", page)
    assert font is not None and server.get(font.group(0)) == 200  # the font is served here


def test_websockets_without_the_token_or_from_elsewhere_are_refused(served) -> None:
    server = served()

    async def attempts() -> list[int]:
        codes = []
        async with aiohttp.ClientSession() as session:
            for url, origin in (
                (f"ws://localhost:{server.port}/ws", server.origin),  # textual-serve's URL
                (server.ws_url.replace(server.token, "x" * len(server.token)), server.origin),
                (server.ws_url, "http://evil.example"),  # a page elsewhere in the browser
                (server.ws_url, f"http://localhost:{server.port + 1}"),
            ):
                try:
                    ws = await connect(session, url, origin)
                    await ws.close()
                    codes.append(101)
                except aiohttp.WSServerHandshakeError as exc:
                    codes.append(exc.status)
        return codes

    server.get(f"/{server.token}/")  # up
    assert asyncio.run(attempts()) == [404, 404, 403, 403]
    assert server.app_pids() == []  # none of them started an app


def test_a_viewer_session_runs_the_app_and_writes_nothing_into_the_run(served, trained_run):
    server = served()
    before = snapshot(trained_run)

    async def session() -> bytes:
        async with aiohttp.ClientSession() as http:
            ws = await connect(http, server.ws_url, server.origin)
            await read_until(ws, b"Curves")
            await ws.send_str(json.dumps(["stdin", "s"]))  # a screenshot: to the browser
            delivered = await read_until(ws, b"deliver_file_start")
            await ws.send_str(json.dumps(["stdin", "3"]))  # analysis: measures in memory
            await asyncio.sleep(3)
            await ws.close()
            return delivered

    server.get(f"/{server.token}/")
    assert b"deliver_file_start" in asyncio.run(session())
    wait_for(lambda: server.app_pids() == [])  # the session's app ended with it
    assert snapshot(trained_run) == before  # no SVG, no measures.jsonl, no lock


def test_the_session_cap_holds(served) -> None:
    server = served("--max-sessions", "2")

    async def sessions() -> tuple[int, int]:
        async with aiohttp.ClientSession() as http:
            first = await connect(http, server.ws_url, server.origin)
            second = await connect(http, server.ws_url, server.origin)
            await read_until(first, b"Curves")
            await read_until(second, b"Curves")
            running = len(server.app_pids())
            try:
                third = await connect(http, server.ws_url, server.origin)
                await third.close()
                refused = 101
            except aiohttp.WSServerHandshakeError as exc:
                refused = exc.status
            await first.close()
            for _ in range(200):  # the slot frees once the first app has ended
                try:
                    again = await connect(http, server.ws_url, server.origin)
                    break
                except aiohttp.WSServerHandshakeError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the freed slot was never offered again")
            await read_until(again, b"Curves")
            await again.close()
            await second.close()
            return running, refused

    server.get(f"/{server.token}/")
    assert asyncio.run(sessions()) == (2, 503)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_app_outlives_its_server(served, sig) -> None:
    server = served()
    pids: list[int] = []

    async def open_and_leave_open() -> None:
        http = aiohttp.ClientSession()
        ws = await connect(http, server.ws_url, server.origin)
        await read_until(ws, b"Curves")
        pids.extend(server.app_pids())
        server.proc.send_signal(sig)
        server.proc.wait(timeout=30)
        await http.close()

    server.get(f"/{server.token}/")
    asyncio.run(open_and_leave_open())
    assert len(pids) == 1

    def gone(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        return state == "Z"

    wait_for(lambda: all(gone(pid) for pid in pids), timeout=20)


def test_a_non_loopback_host_warns(trained_run, capsys, monkeypatch) -> None:
    """The warning only: the test binds nothing beyond loopback."""
    from grok_tui import serve
    from grok_tui.cli import main

    monkeypatch.setattr(serve.ViewerServer, "serve", lambda self, debug=False: None)
    monkeypatch.setattr(serve, "check_bindable", lambda host, port: None)
    assert main(["serve", str(trained_run), "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 makes this run reachable from the network" in err
    assert main(["serve", str(trained_run), "--max-sessions", "0"]) == 2


@pytest.mark.parametrize("how", ["eof", "broken-pipe"])
def test_a_viewer_whose_server_vanished_exits_by_itself(trained_run, how) -> None:
    """Without the kernel's help (no PR_SET_PDEATHSIG, as off Linux): EOF on its input or a
    broken screen pipe ends the app, and it does not spin on the closed pipe meanwhile."""
    env = dict(os.environ, TEXTUAL_DRIVER="grok_tui.ui.viewer_driver:ViewerDriver",
               COLUMNS="80", ROWS="24")  # fmt: skip
    env.pop("GROK_TUI_SERVER_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grok_tui", "open", str(trained_run), "--viewer"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()
        assert first == b"__GANGLION__\n"  # the web driver is up
        if how == "eof":
            proc.stdin.close()
        else:
            proc.stdout.close()
            proc.stdin.write(b"D\x00\x00\x00\x01l")  # a key: the app redraws, into the void
            proc.stdin.flush()
        proc.wait(timeout=120)  # a generous deadline: start-up on a loaded machine is slow
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_an_address_it_cannot_serve_at_is_one_line_before_any_url(trained_run, capsys) -> None:
    """A port in use, an address this machine does not have (TEST-NET-1): one line, exit
    code 2, no URL printed (the server's bind failed after it had printed the URL, with a
    traceback)."""
    from grok_tui.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [  # (no host name that does not resolve: without a network the lookup waits)
            (["--host", "127.0.0.1", "--port", str(port)], "Address already in use"),
            (["--host", "192.0.2.1"], "cannot serve at 192.0.2.1:8000"),
        ]
        for extra, needle in cases:
            assert main(["serve", str(trained_run), *extra]) == 2
            err = capsys.readouterr().err
            assert needle in err and "http" not in err, err
            assert err.count("\n") == 1, err  # not even the network warning: refused first
