"""A headless Chromium driven over the DevTools protocol, for the viewer's browser tests
(`browser` and `page` fixtures: tests/bench/conftest.py)."""

import base64
import contextlib
import fcntl
import json
import os
import pathlib
import select
import shutil
import subprocess
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
"""The browser's binary, None where none is installed (Debian: ``apt-get install chromium``)."""


def between(dom: str, start: str, end: str) -> str:
    """The part of ``dom`` from the first ``start`` to the first ``end`` after it."""
    return dom[dom.index(start) : dom.index(end, dom.index(start))]


def _above_4(fd: int) -> int:
    """``fd`` moved to a number above 4 (none of the fds the browser's pipe ends go to)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 5)
    os.close(fd)
    return moved


HASTENED_LOOKS = """(() => { const later = window.setTimeout; window.setTimeout =
  (f, ms, ...rest) => later(f, f.name === 'poll' ? ms / 10 : ms, ...rest); })()"""
"""The page's timer of its next look at the bench (app.js's `poll`) ten times as short."""

DOM = """(document.doctype ? new XMLSerializer().serializeToString(document.doctype) + '\\n' : '')
  + document.documentElement.outerHTML"""
"""The page's DOM as ``chromium --dump-dom`` writes it."""


class Browser:
    """A headless Chromium driven over the DevTools protocol, on the pipe of
    ``--remote-debugging-pipe`` (the browser reads fd 3 and writes fd 4, one JSON message
    ending in a NUL byte at a time)."""

    def __init__(self, profile: pathlib.Path):
        reads, self._out = os.pipe()  # we write, the browser reads
        self._in, writes = os.pipe()  # the browser writes, we read
        reads, writes = (_above_4(fd) for fd in (reads, writes))
        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
            "--window-size=1400,1000", "--remote-debugging-pipe", "about:blank",
        ]  # fmt: skip
        # Bash puts the pipe ends onto fds 3 and 4 (a preexec_fn would run Python in a forked
        # child, which JAX's threads, started by earlier tests, warn against).
        plumb = f'exec "$@" 3<&{reads} 4>&{writes} {reads}<&- {writes}>&-'
        self._process = subprocess.Popen(
            ["bash", "-c", plumb, "bash", *command], pass_fds=(reads, writes),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(reads)
        os.close(writes)
        self._buffer, self._id = b"", 0

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def _receive(self, within: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], within)
            assert ready, f"chromium did not answer within {within:g} s"
            chunk = os.read(self._in, 1 << 16)
            assert chunk, "chromium closed its pipe"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        within: float = 60,
    ) -> dict:
        """The result of ``method``, sent to the browser or to a page's ``session``, which
        must answer ``within`` seconds."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:  # events and other sessions' messages are skipped
            reply = self._receive(within)
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]

    def close(self) -> None:
        """Ends the browser and closes its pipe, also where it ended already (crashed)."""
        with contextlib.suppress(AssertionError, BrokenPipeError):  # a browser gone already
            self.call("Browser.close")
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.end()
        os.close(self._in)
        os.close(self._out)

    def end(self) -> None:
        """Kills the browser (one that does not answer): it is `running` no more."""
        self._process.kill()
        self._process.wait()


class Page:
    """A page of ``browser`` in a browser context of its own: no storage, cookies, cache or
    history shared with another page."""

    def __init__(self, browser: Browser):
        self._browser = browser
        self._context = browser.call("Target.createBrowserContext")["browserContextId"]
        target = browser.call(
            "Target.createTarget", {"url": "about:blank", "browserContextId": self._context}
        )["targetId"]
        attached = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]

    def _call(self, method: str, params: dict | None = None, within: float = 60) -> dict:
        return self._browser.call(method, params, self._session, within)

    def run(self, expression: str, within: float = 60) -> Any:
        """The value of a JavaScript expression in the page (a promise awaited, which must
        settle ``within`` seconds)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self._call("Runtime.evaluate", params, within)
        details = result.get("exceptionDetails")
        assert details is None, details.get("exception", {}).get("description", details)
        return result["result"].get("value")

    def dom(self, url: str, screenshot: pathlib.Path | None = None) -> str:
        """The DOM of ``url`` once the page's script finished, as ``chromium --dump-dom``
        writes it (and a screenshot of the window into ``screenshot``, if given)."""
        self.open(url)
        if screenshot is not None:
            shot = self._call("Page.captureScreenshot", {"format": "png"})
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        return self.run(DOM)

    def open(self, url: str) -> None:
        """Loads ``url`` and waits for the page's script to finish (or fail)."""
        self.navigate(url)
        self.wait_ready()

    def hasten_looks(self) -> None:
        """Makes the pages loaded from now on look at their bench ten times as often, each
        on its own timer still (`poll`'s, every 0.3 s where it waits 3 s): a test waiting
        for the page's next look on its own waits less."""
        self._call("Page.enable")  # without it, the script below is not run
        self._call("Page.addScriptToEvaluateOnNewDocument", {"source": HASTENED_LOOKS})

    def navigate(self, url: str) -> None:
        """Starts loading ``url`` (`wait_ready` waits for its script)."""
        self._call("Page.navigate", {"url": url})

    def wait_for(self, condition: str, seconds: float) -> bool:
        """Whether the JavaScript expression ``condition`` came true within ``seconds``,
        checked in the page every 10 ms (no round trip to the page each time)."""
        waited = (
            "new Promise((held, failed) => { const until = performance.now() +"
            f" {max(seconds, 0) * 1000}; const check = () => {{ try {{ if ({condition}) held(true);"
            " else if (performance.now() > until) held(false); else setTimeout(check, 10); }"
            " catch (error) { failed(error); } }; setTimeout(check); })"
        )
        return self.run(waited, within=seconds + 60)

    def wait_ready(self) -> None:
        """Waits for the page's script to finish (or fail)."""
        ready = (
            "document.body?.dataset.ready === 'true'"
            " || document.getElementById('error')?.hidden === false"
        )
        assert self.wait_for(ready, 60), "the page did not finish loading"
        assert self.run("document.getElementById('error').hidden"), self.run(
            "document.getElementById('error').textContent"
        )

    def settle(self) -> None:
        """Waits until no panel is busy (fetching what a change of the page asked for)."""
        idle = "document.querySelector('[aria-busy=\"true\"]') === null"
        assert self.wait_for(idle, 30), "a panel stayed busy"

    def delay_fetches(self, pattern: str, seconds: float) -> None:
        """Makes the page's requests whose address matches the regex ``pattern`` answer
        ``seconds`` late (the others as ever), counting in ``window.unanswered`` those
        whose answer the page has not read yet (`answered`)."""
        self.run(
            "(() => { const fetchNow = window.fetch; window.unanswered = 0;"
            f" const slow = new RegExp({json.dumps(pattern)});"
            " const read = () => setTimeout(() => { window.unanswered--; });"
            " const reading = (answer) => { const json = answer.json.bind(answer);"
            " answer.json = () => json().finally(read); return answer; };"
            " window.fetch = (url, ...rest) => { window.unanswered++;"
            " return new Promise((done) => setTimeout(() => done(fetchNow(url, ...rest)),"
            f" slow.test(url) ? {seconds * 1000} : 0))"
            " .then(reading, (error) => { read(); throw error; }); }; })()"
        )

    def answered(self) -> None:
        """Waits until the page has read the answer of each request it made since
        `delay_fetches`, the late ones too, and done what it does with them (once read, a
        request the page then makes is counted before the count drops)."""
        assert self.wait_for("!window.unanswered", 30), "the page's requests were not answered"

    def hover(self, selector: str) -> None:
        """Moves the mouse onto the middle of the first element matching ``selector``."""
        box = self.run(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        self.move_to(*box)

    def move_to(self, x: float, y: float) -> None:
        """Moves the mouse to (``x``, ``y``) of the window."""
        self._call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def press(self, key: str) -> None:
        """Presses and releases ``key`` (``"Enter"``, ``" "``, ``"Tab"``) on the element
        with the focus, as a keyboard does."""
        codes = {"Enter": ("Enter", 13, "\r"), " ": ("Space", 32, " "), "Tab": ("Tab", 9, "")}
        code, number, text = codes[key]
        event = {"key": key, "code": code, "windowsVirtualKeyCode": number}
        self._call("Input.dispatchKeyEvent", {"type": "keyDown", "text": text, **event})
        self._call("Input.dispatchKeyEvent", {"type": "keyUp", **event})

    def close(self) -> None:
        """Closes the page and drops its browser context. A browser that does not answer
        (hangs) is ended: the next page gets one started again."""
        try:
            self._browser.call("Target.disposeBrowserContext", {"browserContextId": self._context})
        except AssertionError:
            self._browser.end()
            raise
