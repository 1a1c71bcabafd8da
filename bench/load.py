"""Load test of the HTTP server (loopback only): /ask throughput and latency under concurrency, /ask/stream TTFT.

Starts ``rag serve`` itself in a subprocess (a fresh temporary data dir indexed from seeds/, extractive mode, no API
key, rate limit off) unless --url is given, waits for /readyz, warms up, then:

  A. /ask (extractive): 1 client for --duration seconds, then --clients concurrent clients for --duration seconds.
     Each client loops over the golden questions (eval/golden/seeds.jsonl; clients start at different offsets)
     until the time is up; any non-200 answer or exception is an error. Reported per run: requests, errors,
     throughput, p50/p95/p99 latency, and the throughput ratio N clients / 1 client (target >= 1.8).
  B. /ask/stream (local LLM), only with --stream-local (needs llama-cpp-python and the packaged GGUF) or
     --stream-url: --stream-clients concurrent clients for --duration seconds; time to the first `token` event
     (TTFT; a refusal streams no token: its time to `done` is counted apart), full answer time, 503 responses
     (with their Retry-After, which the client honours) and other errors.

While a run goes on, a probe sends GET /healthz every 0.25 s: its latency shows stalls of the server's event loop.
Servers started here are stopped with SIGTERM at the end, on errors and on Ctrl-C.

    python -m bench.load [--duration 60] [--clients 32] [--stream-local] [--json]
    python -m bench.load --url http://127.0.0.1:8000 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO, machine, percentile

GOLDEN = REPO / "eval" / "golden" / "seeds.jsonl"
ASK_TARGET_RATIO = 1.8
PROBE_INTERVAL_S = 0.25


# ------------------------------------------------- pure helpers (tests/unit/test_bench_load.py)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


@dataclass
class Result:
    """One request as the client saw it."""

    latency: float                  # seconds from sending to the last byte (or the error)
    status: int | None = None       # HTTP status; None when no response came (exception)
    error: str | None = None        # why it counts as an error; None for a good answer
    refused: bool | None = None     # the answer's `refused`
    ttft: float | None = None       # stream: seconds to the first `token` event
    ttlt: float | None = None       # stream: seconds to the last `token` event
    tokens: int = 0                 # stream: `token` events seen
    retry_after: float | None = None  # a 503's Retry-After header (seconds)
    stages: dict[str, float] = field(default_factory=dict)  # the answer's `seconds`
    done_at: float | None = None    # seconds from the start of the run to the end of this request


def summarize(results: Sequence[Result], wall_s: float, window_s: float | None = None) -> dict[str, Any]:
    """Figures of one run: counts, throughput of good answers per second of wall time (the run's duration plus the
    drain of the requests in flight at the deadline) and, with ``window_s``, of the good answers finished within
    the first ``window_s`` seconds; latency percentiles of the good answers, error kinds, refusals and the
    answers' own stage times."""
    ok = [r for r in results if r.error is None]
    in_window = [r for r in ok if window_s and r.done_at is not None and r.done_at <= window_s]
    lat = [r.latency for r in ok]
    errors = Counter(r.error for r in results if r.error is not None)
    stages: dict[str, list[float]] = {}
    for r in ok:
        for k, v in r.stages.items():
            stages.setdefault(k, []).append(v)
    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "error_kinds": dict(errors.most_common()),
        "refused": sum(1 for r in ok if r.refused),
        "wall_s": round(wall_s, 3),
        "throughput_rps": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
        "throughput_in_window_rps": round(len(in_window) / window_s, 3) if window_s else None,
        "p50_s": _r(percentile(lat, 50)),
        "p95_s": _r(percentile(lat, 95)),
        "p99_s": _r(percentile(lat, 99)),
        "max_s": _r(max(lat)) if lat else None,
        "stages_p50_s": {k: _r(percentile(v, 50), 4) for k, v in stages.items()},
        "stages_p95_s": {k: _r(percentile(v, 95), 4) for k, v in stages.items()},
    }


def summarize_stream(results: Sequence[Result], wall_s: float, window_s: float | None = None) -> dict[str, Any]:
    """Figures of a streaming run: TTFT over answers that streamed tokens, time to `done` for refusals that streamed
    none, full answer times, 503s with their Retry-After values, other errors."""
    base = summarize(results, wall_s, window_s)
    ok = [r for r in results if r.error is None]
    streamed = [r.ttft for r in ok if r.ttft is not None]
    no_token = [r.latency for r in ok if r.ttft is None]
    busy = [r for r in results if r.status == 503]
    base.update({
        "answers_with_tokens": len(streamed),
        "ttft_p50_s": _r(percentile(streamed, 50)),
        "ttft_p95_s": _r(percentile(streamed, 95)),
        "no_token_answers": len(no_token),
        "no_token_done_p50_s": _r(percentile(no_token, 50)),
        "no_token_done_p95_s": _r(percentile(no_token, 95)),
        "full_p50_s": base["p50_s"],
        "full_p95_s": base["p95_s"],
        # first to last token: near 0 with many tokens would mean the tokens were buffered, not streamed
        "token_span_p50_s": _r(percentile([r.ttlt - r.ttft for r in ok if r.ttft is not None and r.ttlt], 50)),
        "tokens_p50": _r(percentile([float(r.tokens) for r in ok if r.ttft is not None], 50), 1),
        "busy_503": len(busy),
        "retry_after_s": sorted(Counter(r.retry_after for r in busy).items(), key=lambda kv: (kv[0] is None, kv[0])),
        "other_errors": sum(1 for r in results if r.error is not None and r.status != 503),
    })
    return base


@dataclass
class SSEEvent:
    event: str
    data: str


class SSEParser:
    """Incremental Server-Sent Events parser (the WHATWG rules that matter here): feed it lines without their end of
    line; an empty line dispatches the event (type ``message`` when no ``event:`` field) if it has data; ``:`` lines
    are comments; several ``data:`` lines join with a newline; one space after the colon is dropped."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed_line(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            ev = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return ev
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # id, retry and unknown fields: ignored


def parse_sse(text: str) -> list[SSEEvent]:
    """All complete events of a whole SSE body (an unterminated last event is dropped, as a browser would)."""
    parser = SSEParser()
    events = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        ev = parser.feed_line(line)
        if ev is not None:
            events.append(ev)
    return events


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds (the delta-seconds form; an HTTP date is turned into a delay)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def load_questions(path: Path) -> list[str]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            q = json.loads(line).get("question")
            if q:
                questions.append(q)
    if not questions:
        raise SystemExit(f"no questions in {path}")
    return questions


def start_offsets(clients: int, n_questions: int) -> list[int]:
    """Where each client starts in the question list: spread evenly so that clients ask different questions."""
    return [(i * n_questions) // clients % n_questions for i in range(clients)]


# --------------------------------------------------------------------------- the server, in a subprocess


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes] | None = None
    work: Path | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    keep: bool = False                      # keep the temporary folder (and the log) afterwards
    exit_code: int | None = None            # after stop_server
    problems: dict[str, Any] | None = None  # log_problems(), read by stop_server before the folder goes
    graceful: bool | None = None            # uvicorn finished its graceful shutdown (after stop_server)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_problems(self, samples: int = 5) -> dict[str, Any]:
        """WARNING / ERROR / Traceback lines in the server log (uvicorn and the product's loggers): counts and
        the first few lines."""
        if self.log_path is None or not self.log_path.exists():
            return {}
        counts: Counter[str] = Counter()
        first: list[str] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            hit = [w for w in ("WARNING", "ERROR", "Traceback") if w in line]
            counts.update(hit)
            if hit and len(first) < samples:
                first.append(line[:300])
        return {**counts, "lines": first} if counts else {}

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (all its threads), from /proc; None elsewhere."""
        if self.process is None:
            return None
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the server gets SIGTERM if this bench is killed outright (SIGKILL), so no server is left behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


def start_server(mode: str, extra_env: dict[str, str], timeout_s: float, keep: bool) -> Server:
    """``python -m rag serve`` on 127.0.0.1 with a fresh data dir; returns once /readyz says ready."""
    import httpx

    work = Path(tempfile.mkdtemp(prefix=f"rag-load-{mode}-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    server_env = {
        "RAG_DATA_DIR": str(work / "data"), "RAG_SEEDS_DIR": str(REPO / "seeds"), "RAG_ANSWER_MODE": mode,
        "RAG_RATE_LIMIT_PER_MINUTE": "0", "RAG_LOG_LEVEL": "INFO",
    }
    server_env.update(extra_env)
    env.update(server_env)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"})
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag", "serve", "--host", "127.0.0.1", "--port", str(port), "--mode", mode],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            start_new_session=sys.platform != "linux",
        )
    server = Server(url=f"http://127.0.0.1:{port}", process=proc, work=work, log_path=log_path, env=server_env,
                    keep=keep)
    if keep:
        print(f"server log: {log_path}", file=sys.stderr)
    t0 = time.monotonic()
    last = ""
    try:
        while time.monotonic() - t0 < timeout_s:
            if proc.poll() is not None:
                raise RuntimeError(f"rag serve ({mode}) exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                r = httpx.get(server.url + "/readyz", timeout=2)
                if r.status_code == 200:
                    print(f"{mode} server ready in {time.monotonic() - t0:.1f} s at {server.url}", file=sys.stderr)
                    return server
                body = r.json()
                if body.get("error"):
                    raise RuntimeError(f"rag serve ({mode}) failed to start: {body['error']}\n{server.log_tail()}")
                if body.get("stage") != last:
                    last = body.get("stage", "")
                    print(f"  {mode} server: {last}", file=sys.stderr)
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"rag serve ({mode}) not ready after {timeout_s:.0f} s:\n{server.log_tail()}")
    except BaseException:
        stop_server(server)
        raise


def stop_server(server: Server, timeout_s: float = 40.0) -> int | None:
    """SIGTERM (uvicorn's graceful shutdown), SIGKILL if it hangs; then remove its temporary folder. Idempotent."""
    proc = server.process
    if proc is None:
        return None
    if server.problems is not None:  # stopped already
        return server.exit_code
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    server.exit_code = proc.returncode
    server.problems = server.log_problems()
    with contextlib.suppress(OSError):  # uvicorn logs this at the end of a graceful shutdown
        server.graceful = server.log_path is not None and "Finished server process" in server.log_path.read_text(
            errors="replace")
    if server.work is not None and not server.keep:
        shutil.rmtree(server.work, ignore_errors=True)
    return server.exit_code


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM to this bench behaves like Ctrl-C, so the finally blocks stop the servers."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------- the clients


def _client(n: int, timeout_s: float) -> Any:
    import httpx

    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=10.0), trust_env=False,
        limits=httpx.Limits(max_connections=n + 2, max_keepalive_connections=n + 2),
    )


async def _ask_once(client: Any, url: str, question: str, mode: str | None) -> Result:
    body: dict[str, Any] = {"question": question}
    if mode:
        body["mode"] = mode
    t0 = time.perf_counter()
    try:
        r = await client.post(url + "/ask", json=body)
        latency = time.perf_counter() - t0
        if r.status_code != 200:
            return Result(latency, r.status_code, f"HTTP {r.status_code}",
                          retry_after=retry_after_seconds(r.headers.get("retry-after")))
        answer = r.json()
        return Result(latency, 200, refused=bool(answer.get("refused")), stages=dict(answer.get("seconds") or {}))
    except Exception as exc:  # noqa: BLE001 - a failed request is a figure, not a crash
        return Result(time.perf_counter() - t0, None, type(exc).__name__)


async def _stream_once(client: Any, url: str, question: str, mode: str | None) -> Result:
    body: dict[str, Any] = {"question": question}
    if mode:
        body["mode"] = mode
    t0 = time.perf_counter()
    ttft: float | None = None
    ttlt: float | None = None
    tokens = 0
    try:
        async with client.stream("POST", url + "/ask/stream", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                return Result(time.perf_counter() - t0, r.status_code, f"HTTP {r.status_code}",
                              retry_after=retry_after_seconds(r.headers.get("retry-after")))
            parser = SSEParser()
            async for line in r.aiter_lines():
                ev = parser.feed_line(line)
                if ev is None:
                    continue
                now = time.perf_counter() - t0
                if ev.event == "token":
                    tokens += 1
                    ttlt = now
                    if ttft is None:
                        ttft = now
                elif ev.event == "error":
                    code = json.loads(ev.data).get("error", "?") if ev.data.startswith("{") else "?"
                    return Result(now, 200, f"event error: {code}", ttft=ttft, ttlt=ttlt, tokens=tokens)
                elif ev.event == "done":
                    answer = json.loads(ev.data)
                    return Result(now, 200, refused=bool(answer.get("refused")), ttft=ttft, ttlt=ttlt,
                                  tokens=tokens, stages=dict(answer.get("seconds") or {}))
            return Result(time.perf_counter() - t0, 200, "stream ended without done", ttft=ttft, ttlt=ttlt,
                          tokens=tokens)
    except Exception as exc:  # noqa: BLE001
        return Result(time.perf_counter() - t0, None, type(exc).__name__, ttft=ttft, ttlt=ttlt, tokens=tokens)


async def _probe(url: str, stop: asyncio.Event, out: list[float], failures: list[str]) -> None:
    """GET /healthz every PROBE_INTERVAL_S on its own connection: a slow answer means the server's loop stalled."""
    import httpx

    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                r = await client.get(url + "/healthz")
                if r.status_code != 200:
                    failures.append(f"HTTP {r.status_code}")
            except Exception as exc:  # noqa: BLE001
                failures.append(type(exc).__name__)
            out.append(time.perf_counter() - t0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROBE_INTERVAL_S)


async def _loop_lag(stop: asyncio.Event, out: list[float]) -> None:
    """How late this bench's own event loop wakes up (a saturated client would distort the figures)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.05)
        out.append(max(0.0, loop.time() - t - 0.05))


async def run_clients(url: str, *, clients: int, duration: float, questions: Sequence[str], stream: bool,
                      mode: str | None, timeout_s: float, server: Server | None = None) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``duration`` seconds: each sends its next question as soon as the last
    answer is in; none starts a request after the deadline, the ones in flight are waited for (and counted)."""
    once = _stream_once if stream else _ask_once
    offsets = start_offsets(clients, len(questions))
    results: list[Result] = []
    probe_lat: list[float] = []
    probe_fail: list[str] = []
    lag: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    cpu0 = server.cpu_seconds() if server else None
    bench_cpu0 = time.process_time()

    async def one_client(i: int, client: Any, deadline: float) -> None:
        k = offsets[i]
        while loop.time() < deadline:
            res = await once(client, url, questions[k % len(questions)], mode)
            res.done_at = loop.time() - t0
            k += 1
            results.append(res)
            pause = 0.0
            if res.status == 503:  # a polite client waits as told (1 s without Retry-After)
                pause = res.retry_after if res.retry_after is not None else 1.0
            elif res.status is None:  # no answer at all (refused connection, ...): no busy loop of failures
                pause = 0.1
            if pause:
                await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))

    async with _client(clients, timeout_s) as client:
        probe = asyncio.create_task(_probe(url, stop, probe_lat, probe_fail))
        lagger = asyncio.create_task(_loop_lag(stop, lag))
        t0 = loop.time()  # one_client reads it
        deadline = t0 + duration
        try:
            await asyncio.gather(*(one_client(i, client, deadline) for i in range(clients)))
        finally:
            wall = loop.time() - t0
            stop.set()
            await asyncio.gather(probe, lagger, return_exceptions=True)
    summary = (summarize_stream if stream else summarize)(results, wall, duration)
    cpu1 = server.cpu_seconds() if server else None
    summary.update({
        "clients": clients,
        "healthz_probe": {"n": len(probe_lat), "failures": len(probe_fail),
                          "p50_ms": _r(_ms(percentile(probe_lat, 50)), 1),
                          "p99_ms": _r(_ms(percentile(probe_lat, 99)), 1),
                          "max_ms": _r(_ms(max(probe_lat)) if probe_lat else None, 1)},
        "bench_loop_lag_max_ms": _r(_ms(max(lag)) if lag else None, 1),
        "bench_cpu_s": round(time.process_time() - bench_cpu0, 2),
        "server_cpu_s": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None,
    })
    if summary["server_cpu_s"] is not None and wall > 0:
        summary["server_cores_busy"] = round(summary["server_cpu_s"] / wall, 2)
    return summary


def _ms(x: float | None) -> float | None:
    return None if x is None else x * 1000


async def warm_up(url: str, questions: Sequence[str], n: int, *, stream: bool, mode: str | None,
                  timeout_s: float) -> list[str]:
    """``n`` sequential requests before measuring (first-call costs: lazy imports, caches, the LLM's first
    prompt). Returns their errors."""
    once = _stream_once if stream else _ask_once
    errors = []
    async with _client(1, timeout_s) as client:
        for i in range(n):
            res = await once(client, url, questions[(i * 7) % len(questions)], mode)
            if res.error:
                errors.append(res.error)
    return errors


# --------------------------------------------------------------------------- report


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def print_ask(a: dict[str, Any]) -> None:
    print(f"\nA. POST /ask ({a['mode']}), {a['questions']} golden questions, {a['duration_s']:g} s per run")
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>7} {'in win':>6} {'p50 s':>7} {'p95 s':>7} "
          f"{'p99 s':>7} {'max s':>7} {'refused':>7} {'queue p50':>9} {'srv cores':>9} {'healthz p99/max ms':>18}")
    for run in a["runs"]:
        h = run["healthz_probe"]
        print(f"{run['clients']:>7} {run['requests']:>8} {run['errors']:>6} {_f(run['throughput_rps'], 2):>7} "
              f"{_f(run['throughput_in_window_rps'], 2):>6} {_f(run['p50_s']):>7} {_f(run['p95_s']):>7} "
              f"{_f(run['p99_s']):>7} {_f(run['max_s']):>7} {run['refused']:>7} "
              f"{_f(run['stages_p50_s'].get('queue'), 3):>9} {_f(run.get('server_cores_busy'), 2):>9} "
              f"{_f(h['p99_ms'], 1) + ' / ' + _f(h['max_ms'], 1):>18}")
        if run["error_kinds"]:
            print(f"{'':>7} errors: " + ", ".join(f"{k} x{v}" for k, v in run["error_kinds"].items()))
    print("req/s: good answers / (duration + drain of the requests in flight at the deadline); in win: good answers "
          "finished within the duration / duration")
    print("bench's own loop lag max (ms): " + ", ".join(f"{r['clients']} clients {_f(r['bench_loop_lag_max_ms'], 1)}"
                                                        for r in a["runs"]))
    ratio = a["throughput_ratio"]
    print(f"throughput ratio {a['runs'][-1]['clients']} clients / 1 client: {_f(ratio, 2)} "
          f"(target >= {ASK_TARGET_RATIO}: {'ok' if a['ratio_ok'] else 'MISSED'}); "
          f"errors: {a['errors_total']} ({'ok' if a['errors_ok'] else 'NOT ZERO'})")


def print_stream(b: dict[str, Any]) -> None:
    if b.get("skipped"):
        print(f"\nB. POST /ask/stream: skipped ({b['skipped']})")
        return
    r = b["run"]
    print(f"\nB. POST /ask/stream ({b['mode']}), {r['clients']} clients, {b['duration_s']:g} s")
    print(f"{'answers':>7} {'w/ tokens':>9} {'no token':>8} {'TTFT p50':>8} {'TTFT p95':>8} {'full p50':>8} "
          f"{'full p95':>8} {'no-token done p50':>17} {'503s':>4} {'errors':>6} {'healthz p99/max ms':>18}")
    h = r["healthz_probe"]
    print(f"{r['ok']:>7} {r['answers_with_tokens']:>9} {r['no_token_answers']:>8} {_f(r['ttft_p50_s']):>8} "
          f"{_f(r['ttft_p95_s']):>8} {_f(r['full_p50_s']):>8} {_f(r['full_p95_s']):>8} "
          f"{_f(r['no_token_done_p50_s']):>17} {r['busy_503']:>4} {r['other_errors']:>6} "
          f"{_f(h['p99_ms'], 1) + ' / ' + _f(h['max_ms'], 1):>18}")
    print(f"  tokens per streamed answer p50 {_f(r['tokens_p50'], 0)}, first to last token p50 "
          f"{_f(r['token_span_p50_s'])} s")
    if r["busy_503"]:
        print("  503 Retry-After values (s, count): " + ", ".join(f"{k} x{v}" for k, v in r["retry_after_s"]))
    if r["error_kinds"]:
        print("  errors: " + ", ".join(f"{k} x{v}" for k, v in r["error_kinds"].items()))
    if r["stages_p50_s"]:
        print("  stages p50 (s): " + ", ".join(f"{k} {v}" for k, v in r["stages_p50_s"].items()))


# --------------------------------------------------------------------------- main


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.startswith("RAG_"):
            raise SystemExit(f"--server-env wants RAG_NAME=value, got {pair!r}")
        out[key] = value
    return out


def _local_model_env() -> dict[str, str]:
    """Point a fresh data dir at an already assembled GGUF, so the local server does not assemble 1 GB again."""
    if os.environ.get("RAG_LLM_MODEL"):
        return {"RAG_LLM_MODEL": os.environ["RAG_LLM_MODEL"]}
    from rag.llm_model import DEFAULT_MODEL

    for candidate in (REPO / ".rag" / "models" / f"{DEFAULT_MODEL}.gguf",):
        if candidate.is_file():
            return {"RAG_LLM_MODEL": str(candidate)}
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an already running server for scenario A (nothing is started for it)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per run (default 60)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients of the second /ask run (default 32)")
    ap.add_argument("--questions", type=Path, default=GOLDEN, help="JSON Lines with a `question` field")
    ap.add_argument("--warmup", type=int, default=3, help="sequential requests before measuring (default 3)")
    ap.add_argument("--timeout", type=float, default=180.0, help="client timeout per request, seconds")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for /readyz")
    ap.add_argument("--skip-ask", action="store_true", help="leave out scenario A")
    ap.add_argument("--stream-local", action="store_true",
                    help="scenario B: start a local-LLM server and stream from it (needs llama-cpp-python)")
    ap.add_argument("--stream-url", help="scenario B against an already running server (its default mode)")
    ap.add_argument("--stream-clients", type=int, default=4, help="concurrent /ask/stream clients (default 4)")
    ap.add_argument("--server-env", action="append", default=[], metavar="RAG_NAME=value",
                    help="extra settings for the servers started here (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the started servers' temporary folders and logs")
    ap.add_argument("--json", action="store_true", help="print one JSON object with every figure as the last line")
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.stream_clients < 1:
        ap.error("--duration, --clients and --stream-clients must be positive")

    questions = load_questions(args.questions)
    extra_env = _parse_env(args.server_env)
    report: dict[str, Any] = {
        "bench": "load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cpu_count": os.cpu_count(),
        "settings": {
            "duration_s": args.duration, "clients": args.clients, "stream_clients": args.stream_clients,
            "warmup": args.warmup, "timeout_s": args.timeout, "questions_file": str(args.questions),
            "questions": len(questions), "url": args.url, "stream_url": args.stream_url,
            "stream_local": args.stream_local, "server_env": extra_env,
        },
    }
    started: list[Server] = []
    try:
        with sigterm_as_interrupt():
            if not args.skip_ask:
                report["ask"] = scenario_ask(args, questions, extra_env, started)
                print_ask(report["ask"])
            if args.stream_local or args.stream_url:
                report["stream"] = scenario_stream(args, questions, extra_env, started)
                print_stream(report["stream"])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers started here", file=sys.stderr)
        return 130
    finally:
        for server in started:
            code = stop_server(server)
            report.setdefault("servers", []).append(
                {"mode": server.env.get("RAG_ANSWER_MODE"), "exit_code": code, "graceful_shutdown": server.graceful,
                 "log_problems": server.problems})
    print(f"\nmachine: {report['machine']}; date {report['date']}")
    for s in report.get("servers", []):
        problems = {k: v for k, v in (s["log_problems"] or {}).items() if k != "lines"}
        # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is over: exit code -15 is normal
        print(f"server ({s['mode']}): exit code {s['exit_code']} after SIGTERM, graceful shutdown: "
              f"{'yes' if s['graceful_shutdown'] else 'NO'}; log: {problems or 'clean'}")
        for line in (s["log_problems"] or {}).get("lines", []):
            print(f"  {line}")
    if args.json:
        print(json.dumps(report))
    return 0


def scenario_ask(args: argparse.Namespace, questions: Sequence[str], extra_env: dict[str, str],
                 started: list[Server]) -> dict[str, Any]:
    server: Server | None = None
    if args.url:
        url = args.url.rstrip("/")
        mode = None  # the server's default
    else:
        server = start_server("extractive", extra_env, args.start_timeout, args.keep)
        started.append(server)
        url, mode = server.url, "extractive"
    warm_errors = asyncio.run(warm_up(url, questions, args.warmup, stream=False, mode=mode, timeout_s=args.timeout))
    runs = []
    for clients in (1, args.clients) if args.clients != 1 else (1,):
        print(f"/ask: {clients} client(s) for {args.duration:g} s ...", file=sys.stderr)
        runs.append(asyncio.run(run_clients(url, clients=clients, duration=args.duration, questions=questions,
                                            stream=False, mode=mode, timeout_s=args.timeout, server=server)))
    one, many = runs[0]["throughput_rps"], runs[-1]["throughput_rps"]
    ratio = many / one if one and many is not None else None
    errors_total = sum(r["errors"] for r in runs)
    if server is not None:  # the extractive server is done: free the cores before scenario B
        stop_server(server)
    return {
        "url": url, "mode": mode or "server default", "started_server": server is not None,
        "server_env": server.env if server else None, "duration_s": args.duration, "questions": len(questions),
        "warmup_errors": warm_errors, "runs": runs,
        "throughput_ratio": _r(ratio, 3), "target_ratio": ASK_TARGET_RATIO,
        "ratio_ok": ratio is not None and ratio >= ASK_TARGET_RATIO,
        "errors_total": errors_total, "errors_ok": errors_total == 0 and not warm_errors,
    }


def scenario_stream(args: argparse.Namespace, questions: Sequence[str], extra_env: dict[str, str],
                    started: list[Server]) -> dict[str, Any]:
    server: Server | None = None
    if args.stream_url:
        url, mode = args.stream_url.rstrip("/"), None
    else:
        if importlib.util.find_spec("llama_cpp") is None:
            return {"skipped": "llama_cpp is not installed (make install-llm)"}
        env = {**_local_model_env(), **extra_env}
        server = start_server("local", env, args.start_timeout, args.keep)
        started.append(server)
        url, mode = server.url, "local"
    warm_n = min(args.warmup, 1)
    warm_errors = asyncio.run(warm_up(url, questions, warm_n, stream=True, mode=mode, timeout_s=args.timeout))
    print(f"/ask/stream: {args.stream_clients} clients for {args.duration:g} s ...", file=sys.stderr)
    run = asyncio.run(run_clients(url, clients=args.stream_clients, duration=args.duration, questions=questions,
                                  stream=True, mode=mode, timeout_s=args.timeout, server=server))
    if server is not None:
        stop_server(server)
    return {"url": url, "mode": mode or "server default", "started_server": server is not None,
            "server_env": server.env if server else None, "duration_s": args.duration,
            "warmup_errors": warm_errors, "run": run}


if __name__ == "__main__":
    sys.exit(main())
