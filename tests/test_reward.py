"""recipe_dypo.reward: grading rules, thread/subprocess/fork/Ray consistency, timeouts, worker death, memory cap,
hostile input, batching."""

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from recipe_dypo import reward
from recipe_dypo.reward import compute_score, score_batch

REPO = Path(__file__).resolve().parents[1]

# (data_source, response, ground truth, expected score)
CASES = [
    ("aime", "<think>\n2*102 = 204\n</think>\nThe answer is \\boxed{204}.", "204", 1.0),
    ("aime", "<think>\n...\n</think>\nThe answer is \\boxed{205}.", "204", 0.0),
    (
        "math",
        "<think>x</think> So $r=3$ and the point is \\boxed{\\left(3, \\frac{\\pi}{2}\\right)}",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        1.0,
    ),
    ("math", "<think>x</think> \\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)", 0.0),
    ("minerva", "<think>x</think> The diameter is \\boxed{1.6} cm", "1.6", 1.0),
    ("math500", "<think>x</think> \\boxed{\\frac{1}{2}}", "0.5", 1.0),
    ("amc", "<think>x</think> \\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1.0),
    ("olympiad_bench", "\\boxed{2}", "2", 1.0),  # no think section at all: whole text graded
    ("toy_arith", "<think>\n12 + 7 = 19\n</think>\nThe answer is \\boxed{19}.", "19", 1.0),
    ("aime25", "<think>I guess \\boxed{70}", "70", 0.0),  # <think> never closed (LUFFY's rule)
    (
        "aime25",
        "<think>the answer is \\boxed{70}</think> so the answer is \\boxed{71}",
        "70",
        0.0,
    ),  # only after </think>
    ("aime25", "<think>hmm</think> I am not sure.", "70", 0.0),
    ("gpqa", "<think>x</think>\nANSWER: C", "C", 1.0),
    ("gpqa", "<think>x</think>\nANSWER: B", "C", 0.0),
    ("gpqa_diamond", "<think>x</think> The answer is \\boxed{D}", "D", 1.0),
    ("arc_c", "<think>x</think> \\boxed{\\text{(B)}}", "B", 1.0),
    ("arc_c", "<think>x</think> \\boxed{2}", "2", 1.0),  # ARC rows numbered 1-4
    ("arc_c", "<think>x</think> \\boxed{3}", "2", 0.0),
    ("arc_c", "<think>x</think> The answer is a good guess.", "A", 0.0),
    ("arc_c", "<think>\\boxed{C}</think> the final answer is (A).", "A", 1.0),
]
EXPECTED = [c[3] for c in CASES]


def _scores(fn):
    return [fn(ds, sol, gt) for ds, sol, gt, _ in CASES]


def test_grading_rules_main_thread():
    got = _scores(compute_score)
    assert got == EXPECTED, [(c[:3], g) for c, g in zip(CASES, got) if g != c[3]]


def test_dict_form_and_reasons():
    r = compute_score("aime", "<think>a</think> \\boxed{204}", "204", return_dict=True)
    assert r == {"score": 1.0, "acc": True, "pred": "204", "reason": "correct"}
    assert compute_score("aime", "<think>a</think> \\boxed{7}", "204", return_dict=True)["reason"] == "wrong_answer"
    assert compute_score("aime", "<think>a \\boxed{204}", "204", return_dict=True)["reason"] == "unclosed_think"
    assert compute_score("aime", "<think>a</think> no idea", "204", return_dict=True)["reason"] == "no_answer"
    assert compute_score("aime", "", "204", return_dict=True)["reason"] == "empty_response"
    assert compute_score("gpqa", "ANSWER: A", "", return_dict=True)["reason"] == "bad_ground_truth"
    # several acceptable answers
    assert compute_score("math", "\\boxed{3}", ["2", "3"]) == 1.0


def test_verl_signature_and_loader(tmp_path):
    # the reward manager calls it with keywords plus extra kwargs of its own
    kw = dict(extra_info={"index": 3, "num_turns": None}, reward_router_address=None, reward_model_tokenizer=None)
    assert compute_score(data_source="aime", solution_str="\\boxed{204}", ground_truth="204", **kw) == 1.0
    # verl loads custom_reward_function by file path (as a fresh module, not recipe_dypo.reward)
    from verl.utils.import_utils import load_extern_object

    fn = load_extern_object(module_path=str(REPO / "recipe_dypo" / "reward.py"), object_name="compute_score")
    assert fn(data_source="gpqa", solution_str="<think>x</think> ANSWER: D", ground_truth="D", extra_info={}) == 1.0
    assert fn(data_source="math", solution_str="\\boxed{\\frac{3}{4}}", ground_truth="0.75", return_dict=True)["acc"]


def test_same_scores_in_threads_and_inline():
    with ThreadPoolExecutor(max_workers=6) as ex:
        threaded = list(ex.map(lambda c: compute_score(c[0], c[1], c[2]), CASES))
    assert threaded == EXPECTED
    inline_main = [compute_score(ds, sol, gt, mode="inline") for ds, sol, gt, _ in CASES]
    assert inline_main == EXPECTED
    with ThreadPoolExecutor(max_workers=2) as ex:
        inline_threaded = list(ex.map(lambda c: compute_score(c[0], c[1], c[2], mode="inline"), CASES))
    assert inline_threaded == EXPECTED


def test_math_verify_alone_fails_in_threads():
    """Why the pool exists: math-verify's default (signal) timeout cannot run outside the main thread."""
    from math_verify import parse

    errors = []

    def work():
        try:
            parse("\\boxed{204}")
        except ValueError as e:
            errors.append(str(e))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors and "thread" in errors[0]
    # ... while our reward, called from a thread, still gives the right answer
    box = []
    t = threading.Thread(target=lambda: box.append(compute_score("aime", "\\boxed{204}", "204")))
    t.start()
    t.join()
    assert box == [1.0]


def test_same_scores_in_subprocess():
    code = (
        "import json, sys; from recipe_dypo.reward import compute_score; "
        "cases = json.load(sys.stdin); print(json.dumps([compute_score(*c[:3]) for c in cases]))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(CASES), capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == EXPECTED


# A LaTeX answer that keeps sympy busy for many seconds (about 12 s on one core when graded without a deadline).
PATHOLOGICAL = "<think>x</think> $" + "\\frac{1}{" * 2000 + "2" + "}" * 2000 + "$"


def test_timeout_main_thread_and_worker_survives():
    t = time.monotonic()
    r = compute_score("math", PATHOLOGICAL, "1", return_dict=True, timeout_s=1.0)
    elapsed = time.monotonic() - t
    assert r["score"] == 0.0 and r["reason"] == "timeout"
    assert elapsed < 4.0, elapsed
    assert compute_score("math", "\\boxed{3}", "3") == 1.0  # the pool replaced the killed worker


def test_timeout_in_thread():
    box = []
    t = time.monotonic()
    th = threading.Thread(
        target=lambda: box.append(compute_score("math", PATHOLOGICAL, "1", return_dict=True, timeout_s=1.0))
    )
    th.start()
    th.join(30)
    assert box and box[0]["reason"] == "timeout"
    assert time.monotonic() - t < 4.0


def test_timeout_inline_main_thread():
    t = time.monotonic()
    r = compute_score("math", PATHOLOGICAL, "1", return_dict=True, timeout_s=0.01, mode="inline")
    assert r["reason"] == "timeout" and time.monotonic() - t < 4.0


def test_hostile_completions(tmp_path):
    marker = tmp_path / "pwned"
    hostile = [
        f"__import__('os').system('touch {marker}')",
        f"<think>x</think> \\boxed{{__import__('os').system('touch {marker}')}}",
        f"The final answer is: eval(\"open('{marker}', 'w')\")",
        "<think>x</think> \\boxed{().__class__.__base__.__subclasses__()}",
        "<think>x</think> \\boxed{{}.__class__.__mro__[1].__subclasses__()[0]}",
        "<think>x</think> The answer is \\boxed{9^{9^{9^{9}}}}",
        "<think>x</think> The answer is 9**9**9**9",
        "<think>x</think> \\boxed{" + "{" * 50_000 + "7" + "}" * 50_000 + "}",
        "<think>x</think> \\boxed{" * 20_000,
        "<think>x</think> " + "A" * 1_000_000,  # 1 MB
        "<think>x</think> " + "\\boxed{7}" * 120_000,  # > 1 MB of "answers"
        "<think>x</think> " + "9" * 5000,
    ]
    t = time.monotonic()
    res = score_batch([("math", h, "7") for h in hostile], num_workers=2, timeout_s=2.0)
    elapsed = time.monotonic() - t
    assert [r["score"] for r in res] == [0.0] * len(hostile), res
    assert elapsed < 20.0, elapsed  # every sample ends by its 2 s deadline, two at a time
    assert res[9]["reason"] == "too_long" and res[10]["reason"] == "too_long"
    assert not marker.exists()
    # and through the single-sample path
    assert compute_score("aime", hostile[1], "0", timeout_s=2.0) == 0.0
    assert not marker.exists()
    assert compute_score("aime", "\\boxed{7}", "7") == 1.0  # still healthy afterwards


def test_score_batch_order_inputs_and_timeouts():
    items = [(ds, sol, gt) for ds, sol, gt, _ in CASES]
    items.insert(5, ("math", PATHOLOGICAL, "1"))
    dicts = [{"data_source": ds, "response": sol, "ground_truth": gt} for ds, sol, gt in items]
    res = score_batch(dicts, num_workers=2, timeout_s=1.5)
    assert len(res) == len(items)
    assert res[5]["reason"] == "timeout"
    assert [r["score"] for r in res[:5] + res[6:]] == EXPECTED
    assert all(set(r) == {"score", "acc", "pred", "reason"} for r in res)
    assert score_batch([]) == []


def _grading_workers() -> list[psutil.Process]:
    """Live child processes of this test that grade (killed ones linger as zombies until the pool reaps them)."""
    out = []
    for p in psutil.Process().children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def _kill_and_wait(procs: list[psutil.Process]) -> None:
    """SIGKILL, then wait until each is dead (a zombie), without reaping it: the pool must notice by itself."""
    for p in procs:
        p.kill()
    deadline = time.monotonic() + 10
    for p in procs:
        while time.monotonic() < deadline:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


def test_worker_death_scores_crash_and_run_goes_on(caplog):
    assert compute_score("math", "\\boxed{1}", "1") == 1.0  # workers are up
    items = [("math", PATHOLOGICAL, "1")] + [(ds, sol, gt) for ds, sol, gt, _ in CASES]

    def kill_workers_mid_sample():
        time.sleep(1.5)  # PATHOLOGICAL, the first item, takes far longer than this to grade
        for p in _grading_workers():
            p.kill()

    killer = threading.Thread(target=kill_workers_mid_sample)
    t = time.monotonic()
    killer.start()
    with caplog.at_level(logging.WARNING, logger=reward.__name__):
        res = score_batch(items, num_workers=1, timeout_s=30.0)
    killer.join()
    assert res[0] == {"score": 0.0, "acc": False, "pred": "", "reason": "worker_crash"}
    assert time.monotonic() - t < 20.0  # ended by the death, not by the 30 s deadline
    assert [r["score"] for r in res[1:]] == EXPECTED  # the run went on with fresh workers
    assert any("died" in rec.getMessage() for rec in caplog.records)  # and the death was reported
    assert compute_score("aime", "\\boxed{204}", "204") == 1.0


def test_pool_recovers_when_idle_workers_die():
    """Workers that die while idle are noticed and replaced; the next calls still grade everything."""
    assert compute_score("math", "\\boxed{1}", "1") == 1.0
    _kill_and_wait(_grading_workers())
    res = score_batch([(ds, sol, gt) for ds, sol, gt, _ in CASES], num_workers=2)
    assert [r["score"] for r in res] == EXPECTED
    time.sleep(0.5)  # now the dead pool has surely been noticed
    assert compute_score("aime", "\\boxed{204}", "204") == 1.0


def test_memory_cap_ends_a_sample_and_run_goes_on(monkeypatch):
    """2^(2^32) is a 512 MB integer (minutes of CPU without a cap); under a 300 MB cap the worker fails fast."""
    monkeypatch.setenv("DYPO_REWARD_WORKER_MEM_MB", "300")
    reward.shutdown_pool()  # the next pool starts with this cap
    try:
        t = time.monotonic()
        r = compute_score("math", "<think>x</think> \\boxed{2^{2^{32}}}", "7", return_dict=True, timeout_s=30.0)
        assert r["score"] == 0.0 and r["reason"] != "timeout", r
        assert time.monotonic() - t < 20.0
        assert compute_score("math", "<think>x</think> \\boxed{2^{10}}", "1024") == 1.0  # same pool, still grading
    finally:
        monkeypatch.undo()
        reward.shutdown_pool()  # later tests get the default cap


def test_forked_child_starts_its_own_pool():
    assert compute_score("aime", "\\boxed{204}", "204") == 1.0  # the parent's pool exists before the fork
    parent_workers = {p.pid for p in _grading_workers()}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not hand work to the parent's pool (its threads do not exist here)
        try:
            os.write(write_end, json.dumps([compute_score(*c[:3]) for c in CASES]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 60)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        out = os.read(read_end, 1 << 16) if ready else b""
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert out and json.loads(out) == EXPECTED
    assert {p.pid for p in _grading_workers()} == parent_workers  # the child neither used nor stopped them
    assert _scores(compute_score) == EXPECTED


def test_same_scores_in_ray_actor():
    """verl grades in Ray actors, from executor threads; workers spawned there import Ray's worker script."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray already runs in this process with a configuration of its own")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote
        class Grader:
            def grade(self, cases):
                from recipe_dypo.reward import compute_score

                with ThreadPoolExecutor(max_workers=4) as ex:
                    return list(ex.map(lambda c: compute_score(*c[:3]), cases))

        assert ray.get(Grader.remote().grade.remote(CASES), timeout=180) == EXPECTED
    finally:
        ray.shutdown()


def test_env_inline_mode(monkeypatch):
    monkeypatch.setenv("DYPO_REWARD_MODE", "inline")
    res = score_batch([(ds, sol, gt) for ds, sol, gt, _ in CASES[:6]], num_workers=2)
    assert [r["score"] for r in res] == EXPECTED[:6]
    assert compute_score("aime", "\\boxed{204}", "204") == 1.0


def test_answer_kind():
    assert reward.answer_kind("gpqa_diamond") == "choice"
    assert reward.answer_kind("arc_c") == "choice"
    for name in ("aime", "aime25", "amc", "math", "minerva", "olympiad_bench", "toy_arith", "math500", "aime24"):
        assert reward.answer_kind(name) == "math"
