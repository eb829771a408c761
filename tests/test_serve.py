"""``jordanlab serve``: a real server process (bad requests never crash it), and the page in headless Chromium.

The browser test drives Debian's ``chromium`` through ``chromedriver`` with the W3C WebDriver protocol
(plain HTTP + JSON, so no client library is needed): it draws curves with pen and touch pointer
events, waits for the predictions, and checks the page's exact mask and crossing-depth's mask against
``jordanlab.topology.fill``. It skips when chromium or chromedriver is missing, unless
``JORDANLAB_REQUIRE_BROWSER=1`` (CI), where it fails. ``JORDANLAB_SCREENSHOTS=DIR`` keeps its screenshots.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from jordanlab.topology import fill, validate

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


# --------------------------------------------------------------------------- a server process
class Server:
    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "jordanlab.cli", "serve", "--port", "0", "--quiet", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if "http://" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.split()[2].rstrip("/")

    def call(self, path: str, body: object = None, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {},
                                     method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _enc(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return {"h": a.shape[0], "w": a.shape[1], "bits": base64.b64encode(a.tobytes()).decode()}


def _dec(obj: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(obj["bits"]), np.uint8).reshape(obj["h"], obj["w"])


@pytest.fixture(scope="module")
def server():
    s = Server("--run", "crossing-depth", "--run", "unet")
    yield s
    s.stop()


def test_predict_matches_the_exact_fill(server: Server) -> None:
    from jordanlab.data import make

    status, models = server.call("/api/models")
    assert status == 200 and [m["name"] for m in models["models"]] == ["crossing-depth", "unet"]
    b, m = make("nested", n=1, size=64)
    status, r = server.call("/api/predict", {"boundary": _enc(b[0])})
    assert status == 200 and r["valid"]
    assert np.array_equal(_dec(r["fill"]), m[0])
    cd = r["predictions"]["crossing-depth"]
    assert np.array_equal(_dec(cd["mask"]), m[0]) and cd["perfect"] and cd["iou"] == 1.0 and cd["rounds"] >= 1
    un = r["predictions"]["unet"]
    errors = int((_dec(un["mask"]) != m[0]).sum())
    assert un["false_positives"] + un["false_negatives"] == errors and un["perfect"] == (errors == 0)
    assert un["rounds"] is None


def test_invalid_drawing_is_explained_and_repaired(server: Server) -> None:
    b = np.zeros((32, 32), np.uint8)
    b[5, 5:26] = b[25, 5:26] = b[5:26, 5] = 1
    b[5:14, 25] = b[16:26, 25] = 1  # a two-pixel gap on the right side
    status, r = server.call("/api/predict", {"boundary": _enc(b)})
    assert status == 200 and not r["valid"] and r["fill"] is None and r["kind"] == "open"
    assert r["pixel"] in ([13, 25], [16, 25])  # an end of the gap
    assert set(r["predictions"]) == {"crossing-depth", "unet"}  # predictions still shown, without scores
    status, fixed = server.call("/api/repair", {"boundary": _enc(b)})
    assert status == 200 and fixed["valid"] and any("gap" in s for s in fixed["steps"])
    validate(_dec(fixed["boundary"]))


def test_example_and_image_upload(server: Server) -> None:
    from PIL import Image

    status, ex = server.call("/api/examples")
    assert status == 200 and "spiral" in ex["suites"] and "blob" in ex["families"]
    for source, canvas in (("spiral", 64), ("large-4x", 128), ("blob", 48), ("shapes-32", 64)):
        status, r = server.call("/api/example", {"source": source, "index": 1, "canvas": canvas})
        assert status == 200, r
        validate(_dec(r["boundary"]))
    # a JPEG of a ring, dark on light, anti-aliased: read any format Pillow reads
    yy, xx = np.mgrid[:40, :40]
    ring = np.abs(np.hypot(yy - 20, xx - 20) - 12) < 1.0
    buf = io.BytesIO()
    Image.fromarray(np.where(ring, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=85)
    status, r = server.call("/api/image", raw=buf.getvalue())
    assert status == 200 and _dec(r["boundary"]).shape == (40, 40)
    assert (_dec(r["boundary"]).astype(bool) == ring).mean() > 0.97


def test_explain_returns_training_images(server: Server) -> None:
    from jordanlab.data import make

    b, _ = make("shapes-32", n=1)
    status, r = server.call("/api/explain", {"boundary": _enc(b[0]), "model": "unet", "pixel": [16, 16], "k": 3})
    assert status == 200 and len(r["top"]) == 3 and "tangent kernel" in r["method"]
    c = [abs(t["contribution"]) for t in r["top"]]
    assert c == sorted(c, reverse=True)


@pytest.mark.parametrize("path, body, raw, code", [
    ("/api/predict", None, b"{not json", 400),
    ("/api/predict", None, b"\xff\xfe", 400),
    ("/api/predict", None, b"[1, 2]", 400),
    ("/api/predict", {"boundary": {"h": 10000, "w": 10000, "bits": ""}}, None, 413),
    ("/api/predict", {"boundary": {"h": 8, "w": 8, "bits": "AAAA"}}, None, 400),
    ("/api/predict", {"boundary": {"h": 8, "w": 8, "bits": "not base64!"}}, None, 400),
    ("/api/predict", {"boundary": {"h": 4, "w": 4, "bits": base64.b64encode(bytes([7] * 16)).decode()}}, None, 400),
    ("/api/predict", {"boundary": {"h": 4, "w": 4, "bits": base64.b64encode(bytes(16)).decode()},
                      "models": ["nope"]}, None, 400),
    ("/api/image", None, b"this is not an image", 400),
    ("/api/example", {"source": "nope"}, None, 400),
    ("/api/example", {"source": "large-4x", "canvas": 64}, None, 400),
    ("/api/explain", {"boundary": {"h": 4, "w": 4, "bits": base64.b64encode(bytes(16)).decode()},
                      "model": "unet", "pixel": [9, 9]}, None, 400),
    ("/api/nothing", {}, None, 404),
])
def test_bad_requests_get_4xx_and_the_server_survives(server: Server, path: str, body: object, raw: bytes | None,
                                                      code: int) -> None:
    status, r = server.call(path, body, raw=raw)
    assert status == code and r["error"]
    assert server.call("/api/models")[0] == 200


def test_huge_uploads_are_refused(server: Server) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (2000, 20), 255).save(buf, format="PNG")
    status, r = server.call("/api/image", raw=buf.getvalue())
    assert status == 413 and "2000x20" in r["error"]
    # a declared body beyond the limit is refused before it is read
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        assert b" 413 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "
    assert server.call("/api/models")[0] == 200
    assert server.proc.poll() is None


def test_binds_to_localhost_by_default() -> None:
    from jordanlab.cli import build_parser

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_a_port_in_use_or_out_of_range_is_one_line_naming_it(server: Server) -> None:
    """The real command, against the port the running server holds: exit 2 and one line, no traceback."""
    port = int(server.url.rsplit(":", 1)[1])
    for argv, want in ((["--port", str(port)], f"127.0.0.1:{port}"), (["--port", "70000"], "0..65535"),
                       (["--port", "-1"], "0..65535")):
        proc = subprocess.run([sys.executable, "-m", "jordanlab.cli", "serve", "--quiet", "--run", "parity-scan", *argv],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and want in lines[0] and "Traceback" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- the page in a browser
class WebDriver:
    """The few W3C WebDriver commands the test needs, over HTTP to a chromedriver process."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, driver: str, browser: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                self._req("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": browser, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                        "--window-size=1280,1100", "--force-device-scale-factor=1"]}}
        self.sid = self._req("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _req(self, method: str, path: str, body: object = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                out = json.loads(res.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read()[:500]!r}") from None
        return out.get("value", out) if path != "/session" else out["value"]

    def cmd(self, method: str, path: str, body: object = None) -> object:
        return self._req(method, f"/session/{self.sid}{path}", body)

    def js(self, script: str, *args: object) -> object:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def element(self, css: str) -> dict:
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        assert isinstance(found, dict) and self.ELEMENT in found, found
        return {self.ELEMENT: found[self.ELEMENT]}

    def stroke(self, css: str, points: list[tuple[float, float]], pointer: str = "pen") -> None:
        """One pointer stroke through ``points`` (pixels from the element's centre)."""
        el = self.element(css)
        moves: list[dict] = [{"type": "pointerMove", "duration": 0, "origin": el, "x": int(points[0][0]),
                              "y": int(points[0][1])}, {"type": "pointerDown", "button": 0}]
        moves += [{"type": "pointerMove", "duration": 10, "origin": el, "x": int(round(x)), "y": int(round(y))}
                  for x, y in points[1:]]
        moves.append({"type": "pointerUp", "button": 0})
        self.cmd("POST", "/actions", {"actions": [{"type": "pointer", "id": f"p-{pointer}",
                                                   "parameters": {"pointerType": pointer}, "actions": moves}]})
        self.cmd("DELETE", "/actions")

    def click(self, css: str, x: int, y: int) -> None:
        self.stroke(css, [(x, y)], pointer="mouse")

    def wait(self, script: str, timeout: float = 120.0) -> object:
        t0 = time.time()
        while time.time() - t0 < timeout:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.2)
        raise TimeoutError(f"page never satisfied: {script}")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _browser() -> tuple[str, str]:
    driver, browser = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not (driver and browser):
        msg = ("headless Chromium is not installed (need the Debian packages chromium and chromium-driver: "
               "apt-get install -y chromium chromium-driver)")
        if os.environ.get("JORDANLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return driver, browser


def _circle(cx: float, cy: float, r: float, n: int = 90) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(2 * math.pi * t / n), cy + r * math.sin(2 * math.pi * t / n)) for t in range(n + 1)]


def _page_state(wd: WebDriver) -> tuple[np.ndarray, dict]:
    state = wd.js("return {bits: Array.from(window.jl.lastBits), n: window.jl.N, last: window.jl.last};")
    n = state["n"]
    return np.array(state["bits"], np.uint8).reshape(n, n), state["last"]


def _wait_prediction(wd: WebDriver, after: int) -> None:
    wd.wait(f"return window.jl.predictions > {after} && window.jl.pending === 0 && "
            "window.jl.lastBits.every((v, i) => v === window.jl.grid[i]);")


def test_the_page_in_headless_chromium(tmp_path: Path) -> None:
    driver, browser = _browser()
    server = Server("--run", "crossing-depth", "--run", "unet", "--run", "parity-scan")
    wd = None
    shots = Path(os.environ["JORDANLAB_SCREENSHOTS"]) if os.environ.get("JORDANLAB_SCREENSHOTS") else tmp_path
    try:
        wd = WebDriver(driver, browser)
        wd.cmd("POST", "/url", {"url": server.url + "/"})
        wd.wait("return window.jl && window.jl.ready === true;")
        count = wd.js("return window.jl.predictions;")
        # a ring drawn with a pen, a smaller one inside it with a finger: a nested figure with a hole
        wd.stroke("#draw", _circle(0, 0, 150), pointer="pen")
        _wait_prediction(wd, count)
        count = wd.js("return window.jl.predictions;")
        wd.stroke("#draw", _circle(10, 5, 70, 60), pointer="touch")
        _wait_prediction(wd, count)
        drawn, last = _page_state(wd)
        assert drawn.sum() > 100 and last["valid"], last["problem"]
        validate(drawn)
        truth = np.asarray(fill(drawn))
        assert np.array_equal(_dec(last["fill"]), truth)
        assert truth.sum() > drawn.sum()  # something is inside
        cd = last["predictions"]["crossing-depth"]
        assert np.array_equal(_dec(cd["mask"]), truth) and cd["perfect"]
        for name in ("unet", "parity-scan"):  # their scores are those of their masks
            pred = _dec(last["predictions"][name]["mask"])
            assert last["predictions"][name]["perfect"] == bool(np.array_equal(pred, truth))
        wd.screenshot(shots / "serve-draw.png")

        # click the U-Net's prediction at the centre pixel: the training images that carried it
        wd.click('.panel[data-model="unet"] canvas', 0, 0)
        wd.wait("return window.jl.explained >= 1;")
        assert wd.js("return window.jl.lastExplain.top.length;") == 6
        assert wd.js("return document.querySelectorAll('#explain .panel canvas').length;") == 12
        wd.js("document.getElementById('explain').scrollIntoView();")
        wd.screenshot(shots / "serve-explain.png")
        wd.js("window.scrollTo(0, 0);")

        # an invalid drawing: a ring with a gap; the page names the pixel, one click repairs it
        count = wd.js("return window.jl.predictions;")
        wd.js("document.getElementById('clear').click();")
        _wait_prediction(wd, count)
        count = wd.js("return window.jl.predictions;")
        # an arc stopping 2 grid cells (12.5 px at 64 cells on 400 px) short of its start
        gap = 2 * 6.25 / (2 * math.pi * 140)
        arc = [(140 * math.cos(2 * math.pi * t), 140 * math.sin(2 * math.pi * t)) for t in np.linspace(0, 1 - gap, 90)]
        wd.stroke("#draw", arc, pointer="mouse")
        _wait_prediction(wd, count)
        drawn, last = _page_state(wd)
        assert not last["valid"] and last["kind"] == "open" and last["pixel"] is not None
        r, c = last["pixel"]
        assert drawn[r, c] == 1
        assert "Not a valid drawing" in wd.js("return document.getElementById('status').textContent;")
        wd.screenshot(shots / "serve-invalid.png")
        count = wd.js("return window.jl.predictions;")
        wd.js("document.getElementById('repair').click();")
        _wait_prediction(wd, count)
        wd.wait("return document.getElementById('status').textContent.startsWith('Repaired');")
        drawn, last = _page_state(wd)
        assert last["valid"], last["problem"]
        assert np.array_equal(_dec(last["fill"]), np.asarray(fill(drawn)))
        wd.screenshot(shots / "serve-repaired.png")
    finally:
        if wd is not None:
            wd.quit()
        server.stop()
