"""`aware3d nemo incremental-summary`: mean ± sample sd over seeds, and the checks on its run folders."""

import pytest

from aware3d.cli import main
from nemo import RunFolder


def _method(aia_clean, forgetting_clean, pose_pred, pose_true):
    return {"per_task": [{"task": 0, "pose_acc_pi6": 0.9, "pose_acc_pi6_predicted": 0.9},
                         {"task": 1, "pose_acc_pi6": pose_true, "pose_acc_pi6_predicted": pose_pred}],
            "average_incremental_accuracy_by_split": {"clean": aia_clean},
            "forgetting_by_split": {"clean": forgetting_clean}}


def _run(path, seed, inemo, replay2d=None, status="complete", kind="nemo.incremental", extra=None):
    run = RunFolder(path)
    run.write_config({"seed": seed, "nemo": {"seed": seed, "train": {"steps": 5}}, **(extra or {})})
    run.update_manifest(kind=kind, status=status, step=2, data=[])
    results = {"inemo": inemo}
    if replay2d is not None:
        results["replay2d"] = replay2d
    run.write_json("incremental.json", results)
    return str(path)


def test_summary_gives_mean_and_sample_sd_over_the_runs(tmp_path, capsys):
    a = _run(tmp_path / "s0", 0, _method(0.50, 0.30, 0.20, 0.25), _method(0.4, 0.1, 0.1, 0.1))
    b = _run(tmp_path / "s1", 1, _method(0.60, 0.20, 0.30, 0.35))  # no replay2d: left out of the table
    out = tmp_path / "seeds.md"
    assert main(["nemo", "incremental-summary", a, b, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # mean 0.55, sample sd sqrt(2 * 0.05**2 / 1) = 0.0707 -> "55.0 ± 7.1"; forgetting 25.0 ± 7.1;
    # the last task's pose (not task 0's 0.9): predicted 25.0 ± 7.1, true 30.0 ± 7.1
    assert "| inemo | 55.0 ± 7.1 | 25.0 ± 7.1 | 25.0 ± 7.1 | 30.0 ± 7.1 |" in text
    assert "replay2d" not in text.split("\n", 1)[1]
    assert "differ" not in text  # the seeds differ, nothing else
    assert out.read_text() == text


def test_summary_names_other_differences_and_refuses_unfinished_or_foreign_runs(tmp_path, capsys):
    a = _run(tmp_path / "s0", 0, _method(0.5, 0.3, 0.2, 0.2))
    b = _run(tmp_path / "s1", 1, _method(0.5, 0.3, 0.2, 0.2), extra={"negatives": "all_classes"})
    assert main(["nemo", "incremental-summary", a, b]) == 0
    assert "the runs also differ in: negatives" in capsys.readouterr().out
    # a key written out at its default counts as the same as a config from before the key existed
    c = _run(tmp_path / "s4", 4, _method(0.5, 0.3, 0.2, 0.2), extra={"negatives": "all_slots"})
    assert main(["nemo", "incremental-summary", a, c]) == 0
    assert "differ" not in capsys.readouterr().out

    running = _run(tmp_path / "s2", 2, _method(0.5, 0.3, 0.2, 0.2), status="running")
    assert main(["nemo", "incremental-summary", a, running]) == 2
    err = capsys.readouterr().err
    assert "s2" in err and "has not finished" in err

    other = _run(tmp_path / "s3", 3, _method(0.5, 0.3, 0.2, 0.2), kind="nemo.train")
    assert main(["nemo", "incremental-summary", a, other]) == 2
    assert "s3" in capsys.readouterr().err

    assert main(["nemo", "incremental-summary", a, str(tmp_path / "s0" / ".." / "s0")]) == 2
    assert "given twice" in capsys.readouterr().err

    assert main(["nemo", "incremental-summary", a, str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err

    assert main(["nemo", "incremental-summary", a, b, "--splits", "L9"]) == 2
    assert "--splits: no split 'L9'" in capsys.readouterr().err

    RunFolder(b).write_json("incremental.json", {"inemo": {"per_task": []}})  # a hand-edited or foreign file
    assert main(["nemo", "incremental-summary", a, b]) == 2
    err = capsys.readouterr().err
    assert "s1/incremental.json" in err and "'inemo'" in err


def test_summary_keeps_only_the_splits_asked_for(tmp_path, capsys):
    both = {**_method(0.5, 0.3, 0.2, 0.2)}
    both["average_incremental_accuracy_by_split"] = {"clean": 0.5, "L2": 0.4}
    both["forgetting_by_split"] = {"clean": 0.3, "L2": 0.2}
    a = _run(tmp_path / "s0", 0, both)
    assert main(["nemo", "incremental-summary", a, "--splits", "L2"]) == 0
    text = capsys.readouterr().out
    assert "| method | AIA L2 | forgetting L2 |" in text and "| inemo | 40.0 | 20.0 | 20.0 | 20.0 |" in text


@pytest.mark.parametrize("values, expected", [([0.5], "50.0"), ([0.1, None], "–")])
def test_one_run_has_no_sd_and_a_missing_value_shows_a_dash(values, expected):
    from nemo.incremental.report import _mean_sd

    assert _mean_sd(values) == expected
