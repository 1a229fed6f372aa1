"""Rule-based 0/1 reward for DYPO training and evaluation.

``compute_score`` has verl's ``custom_reward_function`` signature and is also what the evaluator calls::

    reward:
      custom_reward_function:
        path: <site-packages>/recipe_dypo/reward.py   # or the file in a checkout
        name: compute_score
        reward_kwargs: {return_dict: true}             # optional: log pred/reason per sample

Grading rules
-------------
* If the response contains ``</think>``, only the text after the last ``</think>`` is graded; a response
  that opens ``<think>`` and never closes it scores 0 (reason ``unclosed_think``).
* Math sources (``aime``, ``aime24``, ``aime25``, ``amc``, ``math``, ``math500``, ``minerva``,
  ``olympiad_bench``, ``toy_arith``, and any source not known to be multiple choice): math-verify,
  ``parse`` the gold answer first (wrapped in ``\\boxed{}``), then the response, then ``verify(gold, pred)``.
* Multiple-choice sources (``arc_c``, ``gpqa``, ``gpqa_diamond``, ...): the last ``\\boxed{X}`` or, failing
  that, the last ``ANSWER: X`` / ``answer is X``; compared with the gold label. Gold labels that are
  digits (22 ARC-Challenge rows number their options 1-4) are compared as digits.

Why a process pool, and why this one
------------------------------------
math-verify's own timeouts use ``signal.alarm`` and only work in the main thread; verl calls reward
functions from executor threads, where ``parse`` raises and verl's stock wrapper returns 0.0 for a correct
answer. Here math-verify always runs with its timeouts disabled, inside long-lived worker processes
(``python -c``; no fork of the caller, no re-import of its ``__main__``) that the caller kills when the
per-sample deadline (default 5 s) passes. The result is the same in the main thread, in a thread pool, in a
subprocess and inside Ray actors, and a pathological answer (huge exponent, deeply nested LaTeX) ends as
``score 0, reason "timeout"`` instead of hanging a worker. Model output is only parsed, never executed.

The pool is hand-written because ``pebble.ProcessPool`` (5.2.3, tried as a replacement, tests/test_reward.py
passing) could not keep these guarantees alone: its workers start by multiprocessing ``spawn`` and re-import the
caller's ``__main__`` (an unguarded script re-runs in every worker; in a Ray actor each worker used 130 MB instead
of 71 MB), its timeout does not cover a worker hung at start-up (a 1 s task still pending after 10 s), its SIGTERM
kill waits 3 s on a worker stuck in C code, and a raw ``os.fork`` child's exit handler killed a parent worker; with
the four workarounds it came to 641 lines against 792, and 10-15% lower throughput in overlapping runs.

Environment knobs: ``DYPO_REWARD_MODE`` (``pool`` default, ``inline`` grades in the calling process),
``DYPO_REWARD_WORKERS`` (size of the shared pool, default ``min(4, cpu_count)``),
``DYPO_REWARD_TIMEOUT_S`` (default per-sample timeout), ``DYPO_REWARD_WORKER_MEM_MB`` (address-space
limit of each worker, default 4096).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MATH_SOURCES",
    "CHOICE_SOURCES",
    "answer_kind",
    "grade",
    "compute_score",
    "score_batch",
    "shutdown_pool",
]

DEFAULT_TIMEOUT_S = 5.0
# Longest response graded at all (characters). 8k-32k-token generations are ~30k-130k characters;
# anything beyond this is not a real answer and is scored 0 without parsing (reason "too_long").
MAX_RESPONSE_CHARS = 400_000
_STARTUP_TIMEOUT_S = 120.0

# Names written by LUFFY's files and by data_prep/prepare_eval.py (and the toy set).
MATH_SOURCES = frozenset(
    {
        "aime",
        "aime24",
        "aime2024",
        "aime25",
        "aime2025",
        "amc",
        "amc23",
        "math",
        "math500",
        "math_500",
        "minerva",
        "olympiad_bench",
        "olympiadbench",
        "openr1",
        "toy_arith",
    }
)
CHOICE_SOURCES = frozenset({"arc_c", "arc_challenge", "arc-c", "gpqa", "gpqa_diamond", "gpqa-diamond", "mmlu_pro"})

REASONS = (
    "correct",
    "wrong_answer",
    "no_answer",
    "unclosed_think",
    "empty_response",
    "too_long",
    "bad_ground_truth",
    "timeout",
    "worker_crash",
    "error",
)


def answer_kind(data_source: Any) -> str:
    """``"choice"`` for multiple-choice benchmarks, ``"math"`` for everything else."""
    name = str(data_source or "").strip().lower()
    if name in CHOICE_SOURCES or name.startswith(("arc_c", "arc-c", "arc_challenge", "gpqa", "mmlu")):
        return "choice"
    return "math"


# ---------------------------------------------------------------------------------------------------------------------
# Pure grading (no timeout; runs inside a worker process, or inline)
# ---------------------------------------------------------------------------------------------------------------------


def _result(score: float, pred: str | None, reason: str) -> dict:
    pred = "" if pred is None else str(pred)
    if len(pred) > 200:
        pred = pred[:200] + "..."
    return {"score": float(score), "acc": bool(score > 0), "pred": pred, "reason": reason}


def _answer_region(text: str) -> tuple[str | None, str | None]:
    """Text to grade and an early-exit reason (LUFFY's think rule)."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1], None
    if "<think>" in text:
        return None, "unclosed_think"
    return text, None


def _gold_list(ground_truth: Any) -> list[str]:
    if ground_truth is None:
        return []
    if isinstance(ground_truth, str | int | float):
        return [str(ground_truth)]
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, Sequence):
        return [str(g) for g in ground_truth if g is not None and str(g).strip()]
    return [str(ground_truth)]


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces, or None."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        if depth == 0:
            best = text[m.end() : i - 1]
    return best


_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mathit|texttt)\s*\{([^{}]*)\}")


def _choice_label(raw: str, digits: bool) -> str | None:
    """Normalise a boxed / stated option to one label: ``(C)``, ``C)``, ``\\text{C}``, ``C. foo`` -> ``C``."""
    s = raw
    for _ in range(3):
        s = _TEXT_WRAPPER.sub(r"\1", s)
    s = s.replace("$", "").replace("*", "").strip()
    label = r"[1-9]" if digits else r"[A-Ja-j]"
    m = re.fullmatch(rf"\(?\s*({label})\s*\)?(?:\s*[.:)]\s*.*|\s+.*)?", s, flags=re.S)
    if not m:
        return None
    letter = m.group(1).upper()
    if not digits and m.group(1).islower() and len(s) > 1:
        return None  # "a good option" is not the label a
    return letter


def _grade_choice(answer: str, golds: list[str]) -> dict:
    gold_labels = []
    for g in golds:
        boxed = _last_boxed(g)
        g = boxed if boxed is not None else g
        lab = _choice_label(g, digits=g.strip().strip("()").isdigit())
        if lab:
            gold_labels.append(lab)
    if not gold_labels:
        return _result(0.0, None, "bad_ground_truth")
    digits = gold_labels[0].isdigit()
    pred = None
    boxed = _last_boxed(answer)
    if boxed is not None:
        pred = _choice_label(boxed, digits)
    if pred is None:
        label = r"[1-9]" if digits else r"[A-J]"
        stated = list(re.finditer(rf"(?i:answer)\s*[:：]\s*\**\s*\(?\s*({label})(?![A-Za-z0-9])", answer))
        stated += list(
            re.finditer(rf"(?i:answer\s+is)\s*:?\s*\**\s*\(?\s*({label})\s*\)?\**\s*(?:[.,;!]|$)", answer, flags=re.M)
        )
        if stated:
            pred = max(stated, key=lambda m: m.start(1)).group(1).upper()
    if pred is None:
        return _result(0.0, None, "no_answer")
    ok = pred in gold_labels
    return _result(1.0 if ok else 0.0, pred, "correct" if ok else "wrong_answer")


_MV = None


def _math_verify():
    """Import math-verify once, quietly (we disable its signal timeouts on purpose and enforce our own)."""
    global _MV
    if _MV is None:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        for name in ("math_verify", "math_verify.parser", "math_verify.grader", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.ERROR)
        _MV = {
            "parse": parse,
            "verify": verify,
            "gold_cfg": (LatexExtractionConfig(),),
            "gold_fallback_cfg": (LatexExtractionConfig(), ExprExtractionConfig()),
            "pred_cfg": (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()),
        }
    return _MV


def _grade_math(answer: str, golds: list[str]) -> dict:
    mv = _math_verify()
    parse, verify = mv["parse"], mv["verify"]
    gold_parsed = []
    for g in golds:
        g = g.strip()
        text = g if "\\boxed" in g else "\\boxed{" + g + "}"
        parsed = parse(text, mv["gold_cfg"], parsing_timeout=None)
        if not parsed:
            parsed = parse(g, mv["gold_fallback_cfg"], parsing_timeout=None)
        if parsed:
            gold_parsed.append(parsed)
    if not gold_parsed:
        return _result(0.0, None, "bad_ground_truth")
    pred = parse(answer, mv["pred_cfg"], parsing_timeout=None)
    if not pred:
        return _result(0.0, None, "no_answer")
    pred_str = pred[-1] if isinstance(pred[-1], str) else str(pred[0])
    for gold in gold_parsed:  # math-verify is not symmetric: gold first
        if verify(gold, pred, timeout_seconds=None):
            return _result(1.0, pred_str, "correct")
    return _result(0.0, pred_str, "wrong_answer")


def grade(data_source: Any, solution_str: Any, ground_truth: Any, max_response_chars: int = MAX_RESPONSE_CHARS) -> dict:
    """Grade one response in the calling process, WITHOUT a timeout. Returns {score, acc, pred, reason}.

    Prefer :func:`compute_score` / :func:`score_batch`, which run this under a deadline.
    """
    if solution_str is None:
        solution_str = ""
    if not isinstance(solution_str, str):
        solution_str = str(solution_str)
    if not solution_str.strip():
        return _result(0.0, None, "empty_response")
    if len(solution_str) > max_response_chars:
        return _result(0.0, None, "too_long")
    golds = _gold_list(ground_truth)
    if not golds:
        return _result(0.0, None, "bad_ground_truth")
    answer, early = _answer_region(solution_str)
    if early:
        return _result(0.0, None, early)
    if answer_kind(data_source) == "choice":
        return _grade_choice(answer, golds)
    return _grade_math(answer, golds)


def _safe_grade(data_source, solution_str, ground_truth, max_response_chars=MAX_RESPONSE_CHARS) -> dict:
    try:
        return grade(data_source, solution_str, ground_truth, max_response_chars)
    except MemoryError:
        return _result(0.0, None, "error")
    except RecursionError:
        return _result(0.0, None, "error")
    except Exception:  # noqa: BLE001 - a grading bug or a sympy failure is a 0, never a crash of training
        return _result(0.0, None, "error")


# ---------------------------------------------------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------------------------------------------------

_HEADER = struct.Struct(">I")


def _encode(obj) -> bytes:
    body = json.dumps(obj).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _worker_main() -> None:  # pragma: no cover - runs in the child process (covered by tests through the pool)
    """Entry point of a grading worker: length-prefixed JSON requests on stdin, replies on the original stdout."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol channel
    try:
        import resource

        mem_mb = int(os.environ.get("DYPO_REWARD_WORKER_MEM_MB", "4096"))
        if mem_mb > 0:
            limit = mem_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    _safe_grade("math", "\\boxed{\\frac{1}{2}}", "0.5")  # warm up sympy / the LaTeX parser before the first deadline
    _write_all(out_fd, _encode({"ready": True, "pid": os.getpid()}))
    while True:
        header = _read_exact(0, _HEADER.size)
        if header is None:
            return
        body = _read_exact(0, _HEADER.unpack(header)[0])
        if body is None:
            return
        req = json.loads(body)
        # Last line of defence against an orphaned worker stuck in C code (a huge integer power holds the GIL,
        # so no Python-level handler could run): SIGALRM with its default action ends the process.
        hard_limit = float(req.get("hard_limit_s") or 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        if hard_limit > 0:
            signal.setitimer(signal.ITIMER_REAL, hard_limit)
        res = _safe_grade(req["data_source"], req["solution_str"], req["ground_truth"], req["max_response_chars"])
        signal.setitimer(signal.ITIMER_REAL, 0)
        _write_all(out_fd, _encode({"id": req["id"], "result": res}))


class _WorkerDied(RuntimeError):
    pass


class _Worker:
    """One grading subprocess. Not thread-safe: a worker belongs to one caller at a time."""

    def __init__(self):
        pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from recipe_dypo.reward import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C meant for the trainer does not kill graders mid-reply
        )
        self.started = time.monotonic()
        self.ready = False
        self._buf = bytearray()
        self._next_id = 0

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def read_available(self) -> list[dict]:
        """Read what the pipe holds now (call after select says readable); return complete messages."""
        data = os.read(self.fileno(), 1 << 20)
        if not data:
            raise _WorkerDied(f"grading worker {self.proc.pid} exited (rc={self.proc.poll()})")
        self._buf += data
        msgs = []
        while len(self._buf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(self._buf)
            if len(self._buf) < _HEADER.size + n:
                break
            msgs.append(json.loads(bytes(self._buf[_HEADER.size : _HEADER.size + n])))
            del self._buf[: _HEADER.size + n]
        for m in msgs:
            if m.get("ready"):
                self.ready = True
        return [m for m in msgs if not m.get("ready")]

    def wait_ready(self, timeout: float = _STARTUP_TIMEOUT_S) -> None:
        deadline = self.started + timeout
        while not self.ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise RuntimeError(f"grading worker did not start within {timeout:.0f}s")
            r, _, _ = select.select([self], [], [], remaining)
            if r:
                self.read_available()

    def send(self, data_source, solution_str, ground_truth, timeout_s, max_response_chars) -> int:
        self._next_id += 1
        req = {
            "id": self._next_id,
            "data_source": data_source,
            "solution_str": solution_str,
            "ground_truth": ground_truth,
            "max_response_chars": max_response_chars,
            "hard_limit_s": timeout_s + 10.0,
        }
        _write_all(self.proc.stdin.fileno(), _encode(req))
        return self._next_id

    def recv(self, deadline: float) -> dict | None:
        """The next reply, or None when the deadline passes first."""
        while True:
            # replies are strictly one per request, so a reply already buffered is the one we wait for
            if len(self._buf) >= _HEADER.size:
                (n,) = _HEADER.unpack_from(self._buf)
                if len(self._buf) >= _HEADER.size + n:
                    msg = json.loads(bytes(self._buf[_HEADER.size : _HEADER.size + n]))
                    del self._buf[: _HEADER.size + n]
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            r, _, _ = select.select([self], [], [], remaining)
            if r:
                data = os.read(self.fileno(), 1 << 20)
                if not data:
                    raise _WorkerDied(f"grading worker {self.proc.pid} exited (rc={self.proc.poll()})")
                self._buf += data

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        """Polite stop: EOF on stdin makes an idle worker exit."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def _default_workers() -> int:
    env = os.environ.get("DYPO_REWARD_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


class _Pool:
    """Process-wide set of warm workers shared by all threads of the caller."""

    def __init__(self):
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0
        self._pid = os.getpid()

    def _check_fork(self):
        if os.getpid() != self._pid:  # inherited through fork: those pipes belong to the parent
            self._idle, self._count, self._pid = [], 0, os.getpid()
            self._cond = threading.Condition()

    def acquire(self, max_workers: int, wait_ready: bool = True) -> _Worker:
        self._check_fork()
        with self._cond:
            while True:
                while self._idle:
                    w = self._idle.pop()
                    if w.proc.poll() is None:
                        return w
                    w.kill()
                    self._count -= 1
                if self._count < max_workers:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            w = _Worker()
            if wait_ready:
                w.wait_ready()
            return w
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, w: _Worker, healthy: bool = True) -> None:
        if os.getpid() != self._pid:
            return
        if healthy and w.ready and w.proc.poll() is None:
            with self._cond:
                self._idle.append(w)
                self._cond.notify()
            return
        w.kill()
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def replace(self, w: _Worker) -> _Worker:
        """Kill ``w`` and start its successor (not waited for) in the same slot."""
        w.kill()
        return _Worker()

    def shutdown(self) -> None:
        if os.getpid() != self._pid:
            return
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for w in idle:
            w.close()


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def shutdown_pool() -> None:
    """Stop the idle grading workers of this process (they are restarted on demand)."""
    _POOL.shutdown()


# ---------------------------------------------------------------------------------------------------------------------
# Inline mode (no subprocess): signal timer in the main thread, abandoned watchdog thread elsewhere
# ---------------------------------------------------------------------------------------------------------------------


class _InlineTimeout(BaseException):
    pass


def _grade_inline(data_source, solution_str, ground_truth, timeout_s, max_response_chars) -> dict:
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def _alarm(signum, frame):
            raise _InlineTimeout

        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return _safe_grade(data_source, solution_str, ground_truth, max_response_chars)
        except _InlineTimeout:
            return _result(0.0, None, "timeout")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    # A thread cannot be killed: the grading thread is abandoned on timeout (it finishes in the background).
    box: list[dict] = []
    t = threading.Thread(
        target=lambda: box.append(_safe_grade(data_source, solution_str, ground_truth, max_response_chars)),
        daemon=True,
    )
    t.start()
    t.join(timeout_s)
    return box[0] if box else _result(0.0, None, "timeout")


# ---------------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------------

_POOL_BROKEN = False


def _timeout_default(timeout_s):
    if timeout_s is not None:
        return float(timeout_s)
    return float(os.environ.get("DYPO_REWARD_TIMEOUT_S", DEFAULT_TIMEOUT_S))


def _score_one(data_source, solution_str, ground_truth, timeout_s, max_response_chars, mode) -> dict:
    global _POOL_BROKEN
    if isinstance(solution_str, str) and len(solution_str) > max_response_chars:
        return _result(0.0, None, "too_long")  # decided here: no need to ship megabytes to a worker
    mode = (mode or os.environ.get("DYPO_REWARD_MODE") or "pool").lower()
    if mode == "inline" or _POOL_BROKEN:
        return _grade_inline(data_source, solution_str, ground_truth, timeout_s, max_response_chars)
    if mode != "pool":
        raise ValueError(f"reward mode must be 'pool' or 'inline', got {mode!r}")
    try:
        w = _POOL.acquire(_default_workers())
    except (OSError, RuntimeError) as e:
        _POOL_BROKEN = True
        logging.getLogger(__name__).warning("grading workers unavailable (%s); grading inline from now on", e)
        return _grade_inline(data_source, solution_str, ground_truth, timeout_s, max_response_chars)
    healthy = False
    try:
        w.send(str(data_source), solution_str, _jsonable_gt(ground_truth), timeout_s, max_response_chars)
        msg = w.recv(time.monotonic() + timeout_s)
        if msg is None:
            return _result(0.0, None, "timeout")
        healthy = True
        return msg["result"]
    except (_WorkerDied, OSError) as exc:
        logging.getLogger(__name__).warning("a grading worker died mid-sample (%s); scored 0 (worker_crash)", exc)
        return _result(0.0, None, "worker_crash")
    finally:
        _POOL.release(w, healthy)


def _jsonable_gt(ground_truth):
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, str | int | float | list | type(None)):
        return ground_truth
    if isinstance(ground_truth, tuple):
        return list(ground_truth)
    return str(ground_truth)


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: Mapping | None = None,
    *,
    return_dict: bool = False,
    timeout_s: float | None = None,
    max_response_chars: int = MAX_RESPONSE_CHARS,
    mode: str | None = None,
    **kwargs: Any,
) -> float | dict:
    """verl-compatible reward: 1.0 if the response's final answer matches ``ground_truth``, else 0.0.

    Args:
        data_source: benchmark / dataset name; picks math or multiple-choice grading (see :func:`answer_kind`).
        solution_str: the decoded response (without the prompt).
        ground_truth: the gold answer (str, or a list of acceptable answers).
        extra_info: ignored (accepted for verl's signature).
        return_dict: return ``{"score", "acc", "pred", "reason"}`` instead of a float.
        timeout_s: per-sample deadline (default 5 s, env ``DYPO_REWARD_TIMEOUT_S``); a timeout scores 0.
        max_response_chars: longer responses score 0 with reason ``too_long`` without being parsed.
        mode: ``"pool"`` (default) or ``"inline"`` (see module docs).
        **kwargs: anything else verl's reward loop passes (e.g. ``reward_router_address``) is ignored.
    """
    res = _score_one(data_source, solution_str, ground_truth, _timeout_default(timeout_s), max_response_chars, mode)
    return res if return_dict else res["score"]


def _item_fields(item) -> tuple[Any, Any, Any]:
    if isinstance(item, Mapping):
        sol = item.get("solution_str", item.get("response"))
        return item.get("data_source"), sol, item.get("ground_truth")
    data_source, solution_str, ground_truth = item
    return data_source, solution_str, ground_truth


def score_batch(
    items: Iterable,
    num_workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_response_chars: int = MAX_RESPONSE_CHARS,
    show_progress: bool = False,
) -> list[dict]:
    """Grade many responses in parallel worker processes, each under its own deadline.

    Args:
        items: ``(data_source, solution_str, ground_truth)`` tuples or dicts with those keys
            (``response`` is accepted for ``solution_str``).
        num_workers: worker processes (default ``min(4, cpu_count)``, env ``DYPO_REWARD_WORKERS``).
        timeout_s: per-sample deadline, counted from the moment the sample is handed to a worker.
        show_progress: tqdm bar.

    Returns:
        One ``{"score", "acc", "pred", "reason"}`` dict per item, in input order.
    """
    items = [_item_fields(it) for it in items]
    n = len(items)
    results: list[dict | None] = [None] * n
    pending: deque[int] = deque()
    for i, (_, sol, _) in enumerate(items):
        if isinstance(sol, str) and len(sol) > max_response_chars:
            results[i] = _result(0.0, None, "too_long")
        else:
            pending.append(i)
    if not pending:
        return results  # type: ignore[return-value]
    num_workers = max(1, min(num_workers or _default_workers(), len(pending)))
    if (os.environ.get("DYPO_REWARD_MODE") or "pool").lower() == "inline":
        return [
            r if r is not None else _grade_inline(*items[i], timeout_s, max_response_chars)
            for i, r in enumerate(results)
        ]

    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="grading", initial=n - len(pending))
    workers = [_POOL.acquire(max(num_workers, _default_workers()), wait_ready=False) for _ in range(num_workers)]
    idle = [w for w in workers if w.ready]
    starting = {w for w in workers if not w.ready}
    busy: dict[_Worker, tuple[int, float]] = {}

    def _finish(i: int, res: dict) -> None:
        results[i] = res
        if bar is not None:
            bar.update(1)

    def _replace(w: _Worker) -> None:
        workers.remove(w)
        nw = _POOL.replace(w)
        workers.append(nw)
        starting.add(nw)

    try:
        while pending or busy:
            while idle and pending:
                w = idle.pop()
                i = pending.popleft()
                try:
                    w.send(str(items[i][0]), items[i][1], _jsonable_gt(items[i][2]), timeout_s, max_response_chars)
                except OSError:
                    _finish(i, _result(0.0, None, "worker_crash"))
                    _replace(w)
                    continue
                busy[w] = (i, time.monotonic() + timeout_s)
            now = time.monotonic()
            for w in list(starting):
                if now - w.started > _STARTUP_TIMEOUT_S:
                    raise RuntimeError(f"grading worker did not start within {_STARTUP_TIMEOUT_S:.0f}s")
            if not busy and not starting:
                continue
            wait = min([d for _, d in busy.values()] + [now + 1.0]) - now
            readable, _, _ = select.select(list(busy) + list(starting), [], [], max(0.0, wait))
            for w in readable:
                try:
                    msgs = w.read_available()
                except _WorkerDied as exc:
                    if w in busy:
                        logging.getLogger(__name__).warning("a grading worker died mid-sample (%s)", exc)
                        _finish(busy.pop(w)[0], _result(0.0, None, "worker_crash"))
                    starting.discard(w)
                    _replace(w)
                    continue
                if w in starting and w.ready:
                    starting.discard(w)
                    idle.append(w)
                for m in msgs:
                    i, _ = busy.pop(w)
                    _finish(i, m["result"])
                    idle.append(w)
            now = time.monotonic()
            for w, (i, d) in list(busy.items()):
                if now >= d:
                    busy.pop(w)
                    _finish(i, _result(0.0, None, "timeout"))
                    _replace(w)
    finally:
        for w in workers:
            if w in busy or w in starting:
                _POOL.release(w, healthy=False)
            else:
                _POOL.release(w)
        if bar is not None:
            bar.close()
    return results  # type: ignore[return-value]
