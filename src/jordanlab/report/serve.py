"""``jordanlab serve``: a local page where one draws closed curves and sees who learned topology.

The page (``report/static/index.html``, no external resource) talks JSON to a standard-library
``ThreadingHTTPServer``:

========================  ==========================================================================
``GET /``                 the page
``GET /api/models``       the loaded models: name, parameters, training canvas, iterated or not
``GET /api/examples``     the families, presets and suites one can draw an example from
``POST /api/example``     ``{"source", "index", "canvas"}`` -> ``{"boundary"}``
``POST /api/image``       raw image bytes (PNG, JPEG, anything Pillow reads) -> ``{"boundary"}``
``POST /api/predict``     ``{"boundary", "models"}`` -> validity (problem, pixel), exact fill, and per
                          model its mask, error counts, IoU, pixel-perfect flag, rounds
``POST /api/repair``      ``{"boundary"}`` -> repaired ``boundary``, the steps, validity
``POST /api/explain``     ``{"boundary", "model", "pixel", "k"}`` -> the training images that push the
                          pixel (:func:`jordanlab.kernels.lens.final_kernel_attribution`)
========================  ==========================================================================

A boundary travels as ``{"h", "w", "bits"}``: ``bits`` is the base64 of the ``h * w`` row-major bytes
(0 = background, 1 = curve); masks likewise. Bad requests (too large, not an image, not JSON, wrong
fields) get a 4xx status with ``{"error": message}``; the server keeps serving.
"""

from __future__ import annotations

import base64
import json
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["MAX_SIDE", "MIN_SIDE", "MAX_BODY", "App", "make_server", "serve", "static_dir"]

MIN_SIDE = 3
MAX_SIDE = 512
MAX_BODY = 4 * 1024 * 1024  # bytes of one request body
EXPLAIN_TRAIN = 64  # training images scanned by the kernel lens


class RequestError(ValueError):
    """A bad request: answered with ``status`` and the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def static_dir() -> Path:
    """The page's directory (package data)."""
    return Path(__file__).resolve().parent / "static"


# --------------------------------------------------------------------------- encoding
def encode(a: np.ndarray) -> dict[str, Any]:
    """``{"h", "w", "bits"}`` of a binary ``(H, W)`` array."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.uint8))
    return {"h": int(a.shape[0]), "w": int(a.shape[1]), "bits": base64.b64encode(a.tobytes()).decode("ascii")}


def decode(obj: Any, name: str = "boundary") -> np.ndarray:
    """The ``(H, W)`` uint8 {0, 1} array of ``{"h", "w", "bits"}``; :class:`RequestError` when malformed."""
    if not isinstance(obj, dict):
        raise RequestError(f"{name}: expected an object {{h, w, bits}}")
    h, w, bits = obj.get("h"), obj.get("w"), obj.get("bits")
    for key, v in (("h", h), ("w", w)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise RequestError(f"{name}.{key}: expected an integer, got {v!r}")
        if not MIN_SIDE <= v <= MAX_SIDE:
            raise RequestError(f"{name}.{key}: {v} is outside {MIN_SIDE}..{MAX_SIDE}", status=413 if v > MAX_SIDE else 400)
    if not isinstance(bits, str):
        raise RequestError(f"{name}.bits: expected a base64 string")
    try:
        raw = base64.b64decode(bits, validate=True)
    except (ValueError, TypeError):
        raise RequestError(f"{name}.bits: not valid base64") from None
    if len(raw) != h * w:
        raise RequestError(f"{name}.bits: {len(raw)} bytes for a {h}x{w} image (expected {h * w})")
    a = np.frombuffer(raw, dtype=np.uint8).reshape(h, w)
    if a.max(initial=0) > 1:
        raise RequestError(f"{name}.bits: values must be 0 or 1")
    return a.copy()


# --------------------------------------------------------------------------- the application
class App:
    """The models and the request handlers (pure functions of JSON-like objects; no HTTP here).

    Parameters
    ----------
    runs : list of str
        Shipped model names (``jordanlab models --pretrained``) or run directories.
    """

    def __init__(self, runs: list[str], *, device: str = "cpu") -> None:
        from jordanlab.models import count_parameters
        from jordanlab.train import load_model

        self.lock = threading.Lock()  # one computation at a time: torch and the 2 cores are shared
        self.models: dict[str, Any] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, Any] = {}
        self._train_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for spec in runs:
            run = _resolve_run(spec)
            model, config = load_model(run)
            model.to(device).eval()
            name = spec if not Path(spec).exists() else Path(spec).resolve().name
            self.models[name] = model
            self.configs[name] = config
            self.meta[name] = {"name": name, "parameters": count_parameters(model), "model": config.model.name,
                               "preset": config.data.preset,
                               "iterated": callable(getattr(model, "forward_with_rounds", None))
                               or callable(getattr(model, "step", None))}
        self.device = device

    # --- GET
    def models_info(self) -> dict[str, Any]:
        return {"models": list(self.meta.values())}

    @staticmethod
    def examples_info() -> dict[str, Any]:
        from jordanlab.data import FAMILIES, PRESETS, SUITES

        return {"families": sorted(FAMILIES), "presets": sorted(PRESETS), "suites": list(SUITES),
                "min_side": MIN_SIDE, "max_side": MAX_SIDE}

    # --- POST
    def example(self, req: dict[str, Any]) -> dict[str, Any]:
        from jordanlab.data import FAMILIES, PRESETS, SUITES, make
        from jordanlab.data.generate import generate_images
        from jordanlab.data.specs import Spec

        source = req.get("source")
        index = _int(req, "index", 0, 0, 10_000)
        canvas = _int(req, "canvas", 64, 32, MAX_SIDE)
        if source in PRESETS:
            b, _ = make(source, "test", n=index + 1)
        elif source in SUITES:
            mult = SUITES[source][1]
            if canvas // mult < 32:
                raise RequestError(f"source: {source} needs a canvas of at least {32 * mult}, got {canvas}")
            b, _ = make(source, "test", n=index + 1, size=canvas // mult)
        elif source in FAMILIES:
            spec = Spec(f"family-{source}", canvas, source, 0, index + 1, kind="suite")
            b = generate_images(spec, "test", range(index, index + 1), workers=1)[0]
            return {"boundary": encode(b[0]), "source": f"family {source}, image {index}"}
        else:
            raise RequestError(f"source: unknown {source!r}; valid: families, presets or suites of /api/examples")
        return {"boundary": encode(b[index]), "source": f"{source}, image {index}"}

    @staticmethod
    def image(body: bytes) -> dict[str, Any]:
        from jordanlab.data.png import ImageTooLargeError, read_boundary_image

        try:
            b = read_boundary_image(body, max_side=MAX_SIDE, name="upload")
        except ImageTooLargeError as exc:
            raise RequestError(str(exc), status=413) from None
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        return {"boundary": encode(b)}

    def predict(self, req: dict[str, Any]) -> dict[str, Any]:
        from jordanlab.evaluate import per_image_scores, predict_masks
        from jordanlab.topology import InvalidBoundaryError, fill, validate

        b = decode(req.get("boundary"))
        names = self._model_names(req.get("models"))
        out: dict[str, Any] = {"h": int(b.shape[0]), "w": int(b.shape[1]), "valid": True, "problem": None,
                               "pixel": None, "kind": None, "fill": None, "predictions": {}}
        truth = None
        try:
            validate(b)
        except InvalidBoundaryError as exc:
            out.update(valid=False, problem=str(exc), pixel=exc.pixel, kind=exc.problem)
        if out["valid"]:
            truth = np.asarray(fill(b), dtype=np.uint8)
            out["fill"] = encode(truth)
        if not b.any():
            return out
        for name in names:
            with self.lock:
                masks, iters = predict_masks(self.models[name], b[None], batch_size=1, device=self.device)
            pred = masks[0]
            entry: dict[str, Any] = {"mask": encode(pred), "rounds": None if iters is None else int(iters[0])}
            if truth is not None:
                s = per_image_scores(pred[None], truth[None])
                fp = int(((pred == 1) & (truth == 0)).sum())
                fn = int(((pred == 0) & (truth == 1)).sum())
                entry.update(iou=float(s["iou"][0]), perfect=bool(s["perfect"][0]), false_positives=fp,
                             false_negatives=fn)
            out["predictions"][name] = entry
        return out

    @staticmethod
    def repair(req: dict[str, Any]) -> dict[str, Any]:
        from jordanlab.topology.repair import repair

        r = repair(decode(req.get("boundary")))
        return {"boundary": encode(r.boundary), "steps": r.steps, "valid": r.valid, "problem": r.problem,
                "added": int(r.added.sum()), "removed": int(r.removed.sum())}

    def explain(self, req: dict[str, Any]) -> dict[str, Any]:
        from jordanlab.kernels.lens import final_kernel_attribution

        b = decode(req.get("boundary"))
        name = self._model_names([req.get("model")])[0]
        pixel = req.get("pixel")
        if (not isinstance(pixel, list) or len(pixel) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in pixel)):
            raise RequestError("pixel: expected [row, col]")
        if not (0 <= pixel[0] < b.shape[0] and 0 <= pixel[1] < b.shape[1]):
            raise RequestError(f"pixel: {pixel} is outside the {b.shape[0]}x{b.shape[1]} drawing")
        k = _int(req, "k", 6, 1, 16)
        tb, tm = self._train_images(name)
        with self.lock:
            r = final_kernel_attribution(self.models[name], b, (pixel[0], pixel[1]), tb, tm, k=k)
        top = []
        for t in r["top"]:
            m = t["map"]
            scale = float(np.abs(m).max()) or 1.0
            top.append({"index": t["index"], "contribution": t["contribution"], "boundary": encode(tb[t["index"]]),
                        "mask": encode(tm[t["index"]]), "map_scale": scale,
                        # the map as signed bytes: 127 * c / max|c|, offset by 128
                        "map": base64.b64encode(np.clip(np.rint(128 + 127 * m / scale), 1, 255)
                                                .astype(np.uint8).tobytes()).decode("ascii"),
                        "h": int(m.shape[0]), "w": int(m.shape[1])})
        return {"model": name, "pixel": pixel, "method": r["method"], "logit": r["logit"], "total": r["total"],
                "n_train": int(len(tb)), "train_source": f"the first {len(tb)} training images of "
                f"{self.configs[name].data.preset}", "top": top}

    # --- helpers
    def _model_names(self, names: Any) -> list[str]:
        if names is None:
            return list(self.models)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RequestError("models: expected a list of model names")
        unknown = [n for n in names if n not in self.models]
        if unknown:
            raise RequestError(f"models: unknown {', '.join(map(repr, unknown))}; loaded: {', '.join(self.models)}")
        return names

    def _train_images(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        from jordanlab.data import make

        config = self.configs[name]
        key = f"{config.data.preset}|{config.data.seed}"
        if key not in self._train_cache:
            self._train_cache[key] = make(config.data.preset, "train", n=EXPLAIN_TRAIN, seed=config.data.seed)
        return self._train_cache[key]


def _int(req: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = req.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RequestError(f"{key}: expected an integer in {lo}..{hi}, got {v!r}")
    return v


def _resolve_run(spec: str) -> Path:
    """A run directory, or a shipped model's directory (``Run.open`` replaces this)."""
    from jordanlab.models.pretrained import resolve

    return resolve(spec)


# --------------------------------------------------------------------------- HTTP
def _handler(app: App, quiet: bool) -> type[BaseHTTPRequestHandler]:
    static = static_dir()
    posts: dict[str, Callable[[Any], dict[str, Any]]] = {
        "/api/example": app.example, "/api/predict": app.predict, "/api/repair": app.repair,
        "/api/explain": app.explain,
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "jordanlab"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if not quiet:
                super().log_message(format, *args)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _guard(self, fn: Callable[[], Any]) -> None:
            try:
                self._json(200, fn())
            except RequestError as exc:
                self._json(exc.status, {"error": str(exc)})
            except (ValueError, TypeError) as exc:  # bad values deeper down (e.g. a family that cannot draw)
                self._json(400, {"error": str(exc)})
            except Exception as exc:  # never let one request take the server down
                if not quiet:
                    traceback.print_exc()
                self._json(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, (static / "index.html").read_bytes(), "text/html; charset=utf-8")
            elif path == "/api/models":
                self._guard(app.models_info)
            elif path == "/api/examples":
                self._guard(app.examples_info)
            else:
                self._json(404, {"error": f"no such page {path!r}"})

        def _body(self) -> bytes:
            try:
                n = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise RequestError("Content-Length: required", status=411) from None
            if n < 0:
                raise RequestError("Content-Length: negative")
            if n > MAX_BODY:
                raise RequestError(f"request body of {n} bytes exceeds {MAX_BODY}", status=413)
            return self.rfile.read(n)

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            try:
                body = self._body()
            except RequestError as exc:
                self.close_connection = True
                self._json(exc.status, {"error": str(exc)})
                return
            if path == "/api/image":
                self._guard(lambda: app.image(body))
                return
            if path not in posts:
                self._json(404, {"error": f"no such endpoint {path!r}"})
                return

            def run() -> Any:
                try:
                    req = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise RequestError(f"body: not JSON ({exc})") from None
                if not isinstance(req, dict):
                    raise RequestError("body: expected a JSON object")
                return posts[path](req)

            self._guard(run)

    return Handler


def make_server(runs: list[str], *, host: str = "127.0.0.1", port: int = 8765, device: str = "cpu",
                quiet: bool = False) -> ThreadingHTTPServer:
    """A ready ``ThreadingHTTPServer`` (call ``serve_forever``); ``port=0`` picks a free port.

    Raises ``ValueError`` naming the address when the port is out of range or cannot be bound (in use,
    no permission, an unknown host).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535 (0 picks a free one), got {port!r}")
    app = App(runs, device=device)
    try:
        server = ThreadingHTTPServer((host, port), _handler(app, quiet))
    except OSError as exc:
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
                         "(0 picks a free one) or --host") from None
    server.daemon_threads = True
    server.app = app  # type: ignore[attr-defined]
    return server


def serve(runs: list[str] | None = None, *, host: str = "127.0.0.1", port: int = 8765, device: str = "cpu",
          quiet: bool = False) -> None:
    """Serve the page until interrupted; ``runs`` default to every shipped model."""
    from jordanlab.models import pretrained

    server = make_server(list(runs) if runs else pretrained.names(), host=host, port=port, device=device, quiet=quiet)
    h, p = server.server_address[:2]
    print(f"jordanlab serve: http://{h}:{p}/  (models: {', '.join(server.app.models)}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
