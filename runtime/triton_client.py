"""RemoteDerainer: the Derainer interface over a Triton server (``derain-serve``, or any Triton serving the same
contract), through NVIDIA's ``tritonclient``.

    from runtime.triton_client import RemoteDerainer
    derain = RemoteDerainer("http://127.0.0.1:8000")     # or grpc://host:8001
    clean = derain(frame)                                 # BGR uint8 in, BGR uint8 out, like Derainer

Every call either returns its frame or raises ``ServerError`` naming what went wrong (connection refused, timeout,
the server's own error). Nothing waits without a limit: `timeout` bounds each request, and a request that fails for
a connection reason is retried (a server being restarted) until `retry_for` seconds have passed, then reported.
Temporal stabilisation (``stabilize=``) runs here, per stream, because one server is shared by many cameras.
"""
from __future__ import annotations

import threading
import time
from urllib.parse import urlparse

import numpy as np

from derain_edge.imageio import ImageError, to_rgb_uint8

from .errors import RuntimeErrorBase

INPUT = "frames"
OUTPUT = "derained"


class ServerError(RuntimeErrorBase):
    """A request the server did not answer with a frame (unreachable, timed out, or failed on the server)."""


def parse_server_url(url: str) -> tuple[str, str]:
    """'http://host:8000' | 'host:8000' | 'grpc://host:8001' → (protocol, 'host:port')."""
    text = str(url).strip()
    if "://" not in text:
        text = "http://" + text
    u = urlparse(text)
    if u.scheme not in ("http", "grpc") or not u.hostname:
        raise ValueError(f"server URL must look like http://HOST:PORT or grpc://HOST:PORT, got '{url}'")
    port = u.port or (8001 if u.scheme == "grpc" else 8000)
    return u.scheme, f"{u.hostname}:{port}"


class RemoteDerainer:
    """Derainer-compatible client of a Triton server. One instance per thread/stream is cheapest (the HTTP client
    holds one connection); calls on a shared instance are serialised."""

    def __init__(self, url: str = "http://127.0.0.1:8000", model_name: str = "derain", model_version: str = "",
                 timeout: float = 30.0, retry_for: float = 0.0, stabilize: float | bool = False,
                 wait_ready: float | None = 10.0):
        self.protocol, self.address = parse_server_url(url)
        self.url = f"{self.protocol}://{self.address}"
        self.model_name, self.model_version = model_name, str(model_version or "")
        self.timeout = float(timeout)
        self.retry_for = float(retry_for)
        self.retries = 0           # requests that succeeded only after a retry
        self._lock = threading.Lock()
        self._client = None
        strength = 0.6 if stabilize is True else float(stabilize or 0.0)
        if strength > 0:
            from .stabilize import TemporalStabilizer

            self.stabilizer = TemporalStabilizer(strength)
        else:
            self.stabilizer = None
        if wait_ready:
            self.wait_ready(wait_ready)

    # ------------------------------------------------------------------ Derainer interface
    @property
    def backend(self) -> str:
        return f"triton {self.model_name}@{self.address}"

    def describe(self) -> str:
        return f"Triton server {self.url}, model '{self.model_name}' ({self.protocol}, timeout {self.timeout:g} s)"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        out = self._infer(self._to_bgr(frame)[None])[0]
        return self.stabilizer(out) if self.stabilizer is not None else out

    def batch(self, frames) -> list[np.ndarray]:
        """Frames of equal size go in one request (the server may batch them further with other streams')."""
        bgrs = [self._to_bgr(f, f"frame {i}") for i, f in enumerate(frames)]
        out: list[np.ndarray | None] = [None] * len(bgrs)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, b in enumerate(bgrs):
            groups.setdefault(b.shape[:2], []).append(i)
        for idx in groups.values():
            res = self._infer(np.stack([bgrs[i] for i in idx]))
            for i, r in zip(idx, res):
                out[i] = r
        if self.stabilizer is not None:
            out = [self.stabilizer(o) for o in out]
        return out

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> "RemoteDerainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteDerainer({self.url!r}, model_name={self.model_name!r})"

    # ------------------------------------------------------------------ server state
    def wait_ready(self, timeout: float = 10.0) -> None:
        """Waits until the model is ready; ServerError after `timeout` s with the last reason."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                if self._connect().is_model_ready(self.model_name, self.model_version):
                    return
                last = f"model '{self.model_name}' is not ready"
            except Exception as e:  # noqa: BLE001 - connection refused while the server starts
                last = _reason(e)
                self._reset()
            if time.monotonic() >= deadline:
                raise ServerError(f"{self.url}: {last} after {timeout:g} s")
            time.sleep(0.2)

    def statistics(self) -> dict:
        """Triton's per-model statistics (includes batch_stats: the batch sizes the server executed)."""
        with self._lock:
            client = self._connect()
            if self.protocol == "grpc":
                return client.get_inference_statistics(self.model_name, self.model_version, as_json=True)
            return client.get_inference_statistics(self.model_name, self.model_version)

    # ------------------------------------------------------------------ internals
    def _to_bgr(self, frame, name: str = "frame") -> np.ndarray:
        if frame is None:
            raise ImageError(f"{name}: got None (a failed cv2.imread / VideoCapture.read?)")
        if not isinstance(frame, np.ndarray):
            raise ImageError(f"{name}: expected a numpy image array, got {type(frame).__name__}")
        if frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3:
            return np.ascontiguousarray(frame)
        return np.ascontiguousarray(to_rgb_uint8(frame, name, bgr=True)[:, :, ::-1])

    def _module(self):
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as tc
            else:
                import tritonclient.http as tc
        except ImportError as e:
            raise ServerError(f"tritonclient[{self.protocol}] is not installed ({e}); run: "
                              'pip install -c constraints.txt "derain-edge[serve]"') from e
        return tc

    def _connect(self):
        if self._client is None:
            tc = self._module()
            if self.protocol == "grpc":
                self._client = tc.InferenceServerClient(self.address)
            else:
                self._client = tc.InferenceServerClient(self.address, connection_timeout=self.timeout,
                                                        network_timeout=self.timeout)
        return self._client

    def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        tc = self._module()
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        with self._lock:
            while True:
                attempt += 1
                try:
                    client = self._connect()
                    inp = tc.InferInput(INPUT, list(batch.shape), "UINT8")
                    if self.protocol == "grpc":
                        inp.set_data_from_numpy(batch)
                        out = tc.InferRequestedOutput(OUTPUT)
                        result = client.infer(self.model_name, [inp], model_version=self.model_version,
                                              outputs=[out], client_timeout=self.timeout)
                    else:
                        inp.set_data_from_numpy(batch, binary_data=True)
                        out = tc.InferRequestedOutput(OUTPUT, binary_data=True)
                        result = client.infer(self.model_name, [inp], model_version=self.model_version,
                                              outputs=[out], timeout=int(self.timeout * 1e6))
                    y = result.as_numpy(OUTPUT)
                    if y is None or y.shape != batch.shape or y.dtype != np.uint8:
                        got = None if y is None else (y.shape, str(y.dtype))
                        raise ServerError(f"{self.url}: answer {got} does not match the request {batch.shape} uint8")
                    if attempt > 1:
                        self.retries += 1
                    return y
                except ServerError:
                    raise
                except Exception as e:  # noqa: BLE001 - tritonclient raises many types; all become ServerError
                    retryable = _is_connection_error(e)
                    self._reset()
                    if not retryable or time.monotonic() >= deadline:
                        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                        raise ServerError(f"{self.url} model '{self.model_name}': {_reason(e)}{tries}") from e
                    time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _reason(e: BaseException) -> str:
    msg = getattr(e, "message", None)
    msg = msg() if callable(msg) else msg
    text = str(msg or e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def _is_connection_error(e: BaseException) -> bool:
    """Refused/reset connections, an unavailable server and a model not loaded (yet / any more: a server starting or
    shutting down answers "unknown model … has no available versions") are worth a retry; a model error is not."""
    if isinstance(e, (ConnectionError, OSError)):
        return True
    text = f"{type(e).__name__} {e}".lower()
    return any(k in text for k in ("connection refused", "connection reset", "unavailable", "failed to connect",
                                   "broken pipe", "socket closed", "remotedisconnected", "connectionrefused",
                                   "eof occurred", "server disconnected", "unknown model", "no available versions",
                                   "server is stopping", "not ready"))
