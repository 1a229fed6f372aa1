"""DYPO's checkpoint state (recipe_dypo/checkpoint_state.py): written atomically, checked on load against the step
of its folder, and a clear error (not a warning) when a checkpoint verl would resume from has none."""

import json
from collections import Counter

import pytest

from recipe_dypo.checkpoint_state import (
    STATE_FILE,
    DypoStateError,
    apply_dypo_state,
    read_dypo_state,
    save_dypo_state,
)
from recipe_dypo.teachers import TeacherSampler


def test_teacher_draws_resume_identically(tmp_path):
    straight = TeacherSampler(seed=5)
    first = [straight.draw(3) for _ in range(10)]
    rest = [straight.draw(3) for _ in range(20)]

    before = TeacherSampler(seed=5)
    assert [before.draw(3) for _ in range(10)] == first
    folder = tmp_path / "global_step_10"
    save_dypo_state(str(folder), 10, before, Counter(concise=4))
    resumed, draws = TeacherSampler(seed=999), Counter()
    apply_dypo_state(read_dypo_state(str(folder)), resumed, draws)
    assert [resumed.draw(3) for _ in range(20)] == rest and draws == Counter(concise=4)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda path: path.unlink(), "the file is missing"),
        (lambda path: path.write_text(path.read_text()[:25]), "it cannot be read"),  # a torn write
        (lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "global_step": 2})), "step 2"),
    ],
    ids=["missing", "truncated", "other_step"],
)
def test_unusable_state_is_an_error_naming_the_file_and_the_override(tmp_path, damage, problem, caplog):
    folder = tmp_path / "global_step_4"
    path = save_dypo_state(str(folder), 4, TeacherSampler(1), Counter())
    damage(folder / STATE_FILE)
    with pytest.raises(DypoStateError) as err:
        read_dypo_state(str(folder))
    assert str(err.value).startswith(f"{path}: ") and problem in str(err.value)
    assert "dypo.resume_without_state=true" in str(err.value)
    assert read_dypo_state(str(folder), resume_without_state=True) is None  # accepted: reseeded, with a warning
    assert problem in caplog.text


def test_a_crash_while_writing_leaves_the_previous_state(tmp_path, monkeypatch):
    folder = tmp_path / "global_step_6"
    save_dypo_state(str(folder), 6, TeacherSampler(1), Counter(a=1))
    before = (folder / STATE_FILE).read_text()

    def dies_half_way(obj, f):
        f.write('{"global_step": 6, "teacher_')
        raise KeyboardInterrupt  # the process stops here

    monkeypatch.setattr(json, "dump", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_dypo_state(str(folder), 6, TeacherSampler(2), Counter(a=2))
    assert (folder / STATE_FILE).read_text() == before
