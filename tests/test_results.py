"""Results as data: strict JSON round-trips, atomic writes, and clear load errors."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import pytest

from alrao_cli.errors import AlraoUserError
from alrao_cli.results.records import (
    SCHEMA_VERSION,
    EpochRecord,
    RunResult,
    StudyResult,
    load_study,
    save_study,
    write_json_atomic,
)

NAN, INF = math.nan, math.inf


def record(epoch: int, val_loss: float, *, train_loss: float = 1.0, val_acc: float | None = 0.5,
           posterior: tuple[float, ...] | None = None) -> EpochRecord:
    return EpochRecord(
        epoch=epoch, step=10 * epoch, train_loss=train_loss, train_acc=None, val_loss=val_loss,
        val_acc=val_acc, seconds=0.5 * epoch, posterior=posterior,
    )


def run(key: str = "mlp|alrao|seed=0", *, history: tuple[EpochRecord, ...] = (), **fields) -> RunResult:
    values = {
        "arch": "mlp", "method": "alrao", "lr": None, "seed": 0, "status": "ok", "reason": None,
        "params": 1234, "seconds": 3.5,
    }
    values.update(fields)
    return RunResult(key=key, history=history, **values)


def sample_study() -> StudyResult:
    alrao = run(
        history=(
            record(1, 0.9, posterior=(0.2, 0.5, 0.3)),
            record(2, 0.7, posterior=(0.1, 0.3, 0.6)),
        ),
        copy_lrs=(1e-3, 1e-2, 1e-1),
        rate_summary={"fc.weight": {"feature": "row", "count": 8, "min": 1e-5, "max": 10.0}},
        spec={"arch": "mlp", "budget": {"epochs": 2}, "grid": [0.1, 1.0]},
    )
    diverged = run(
        "mlp|sgd|lr=10|seed=0", method="sgd", lr=10.0, status="diverged",
        reason="training loss became nan at step 3",
        history=(record(1, 2.0, train_loss=INF, val_acc=None), record(2, NAN, train_loss=NAN, val_acc=None)),
    )
    failed = run("bad.py:Net|alrao|seed=0", arch="bad.py:Net", status="failed", reason="ImportError: x",
                 params=None, seconds=0.0)
    return StudyResult(
        kind="compare", config={"epochs": 2, "archs": ["mlp", "bad.py:Net"]},
        runs=(alrao, diverged, failed), started="2026-01-01T10:00:00",
        finished="2026-01-01T10:05:00",
    )


def test_round_trip_gives_an_equal_study_with_nan_and_none_kept(tmp_path: Path) -> None:
    study = sample_study()
    save_study(tmp_path, study)
    loaded = load_study(tmp_path)

    # NaN != NaN, so compare the plain forms (non-finite as None) and the NaNs apart.
    assert loaded.to_dict() == study.to_dict()
    assert loaded.runs[0] == study.runs[0]  # no NaN in it: equal as records
    assert loaded.runs[2] == study.runs[2]  # empty history, None params
    diverged = loaded.runs[1]
    assert math.isnan(diverged.history[1].val_loss)  # required float: null -> NaN
    assert math.isnan(diverged.history[0].train_loss)  # inf is not JSON either
    assert diverged.history[0].val_acc is None  # optional float: null -> None
    assert diverged.best_val_loss == 2.0 and diverged.best_epoch == 1
    assert (loaded.kind, loaded.started, loaded.finished) == (study.kind, study.started, study.finished)
    assert loaded.schema_version == SCHEMA_VERSION


def test_results_json_is_strict(tmp_path: Path) -> None:
    save_study(tmp_path, sample_study())

    def reject(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    data = json.loads((tmp_path / "results.json").read_text(), parse_constant=reject)
    assert data["runs"][1]["history"][1]["val_loss"] is None


def test_results_csv_has_one_row_per_run(tmp_path: Path) -> None:
    save_study(tmp_path, sample_study())
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))

    assert [row["key"] for row in rows] == ["mlp|alrao|seed=0", "mlp|sgd|lr=10|seed=0", "bad.py:Net|alrao|seed=0"]
    assert float(rows[0]["best_val_loss"]) == 0.7
    assert rows[0]["best_epoch"] == "2"
    assert float(rows[0]["lr_selected"]) == 0.1
    assert rows[1]["status"] == "diverged" and rows[1]["lr_selected"] == ""
    assert rows[2]["best_val_loss"] == "" and rows[2]["reason"] == "ImportError: x"


@pytest.mark.parametrize(
    ("val_losses", "best_loss", "best_epoch"),
    [
        ((0.9, 0.5, 0.7), 0.5, 2),
        ((0.5, 0.5), 0.5, 1),  # a tie keeps the earliest epoch
        ((NAN, 0.8, INF), 0.8, 2),  # non-finite epochs never win
        ((NAN, NAN), None, None),
        ((), None, None),
    ],
)
def test_best_is_the_lowest_finite_validation_loss(val_losses, best_loss, best_epoch) -> None:
    result = run(history=tuple(record(i, loss, val_acc=i / 10) for i, loss in enumerate(val_losses, start=1)))
    assert result.best_val_loss == best_loss
    assert result.best_epoch == best_epoch
    assert result.best_val_acc == (None if best_epoch is None else best_epoch / 10)


@pytest.mark.parametrize(
    ("posterior", "copy_lrs", "selected"),
    [
        ((0.1, 0.7, 0.2), (1e-3, 1e-2, 1e-1), 1e-2),
        ((NAN, 0.1, 0.2), (1e-3, 1e-2, 1e-1), 1e-1),  # a NaN weight is not the favourite
        ((0.5, 0.5), (1e-3, 1e-2), 1e-3),
        ((0.1, 0.9), (1e-3, 1e-2, 1e-1), None),  # lengths disagree: cannot tell
        ((0.1, 0.9), None, None),  # not an Alrao run
        (None, (1e-3, 1e-2), None),
    ],
)
def test_lr_selected_is_the_rate_of_the_favoured_copy(posterior, copy_lrs, selected) -> None:
    result = run(history=(record(1, 1.0, posterior=(1.0, 0.0)), record(2, 0.9, posterior=posterior)),
                 copy_lrs=copy_lrs)
    assert result.final_posterior == posterior
    assert result.lr_selected == selected


def test_with_run_replaces_the_same_key_in_place_and_appends_new_ones() -> None:
    study = sample_study()
    redone = run("mlp|sgd|lr=10|seed=0", method="sgd", lr=10.0, seconds=9.0)
    replaced = study.with_run(redone)
    assert [r.key for r in replaced.runs] == [r.key for r in study.runs]
    assert replaced.runs[1] is redone
    added = study.with_run(run("cnn|alrao|seed=0", arch="cnn"))
    assert [r.key for r in added.runs][-1] == "cnn|alrao|seed=0"
    assert len(added.runs) == 4 and len(study.runs) == 3


def test_atomic_write_leaves_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    write_json_atomic(path, {"loss": NAN, "values": (1.0, INF)})
    assert os.listdir(tmp_path) == ["data.json"]
    assert json.loads(path.read_text()) == {"loss": None, "values": [1.0, None]}


def test_atomic_write_gives_the_usual_file_mode(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    write_json_atomic(target, {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_crash_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.json"
    write_json_atomic(path, {"version": "old"})

    def crash(source, target) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_json_atomic(path, {"version": "new"})
    assert json.loads(path.read_text()) == {"version": "old"}
    assert os.listdir(tmp_path) == ["data.json"]


def test_save_study_reports_a_failed_write_as_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(source, target) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(AlraoUserError, match="No space left on device") as error:
        save_study(tmp_path, sample_study())
    assert error.value.hint is not None
    assert os.listdir(tmp_path) == []


def _study_dict() -> dict:
    return sample_study().to_dict()


def _with_run_field(name: str, value) -> dict:
    data = _study_dict()
    data["runs"][0][name] = value
    return data


def _without_run_field(name: str) -> dict:
    data = _study_dict()
    del data["runs"][0][name]
    return data


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"schema_version": 1, "runs": [', "corrupt"),
        ("[1, 2, 3]", "not an alrao results file"),
        ('{"hello": "world"}', "not an alrao results file"),
        (json.dumps({**_study_dict(), "schema_version": SCHEMA_VERSION + 1}), "newer alrao"),
        (json.dumps(_without_run_field("status")), "missing field 'status'"),
        (json.dumps(_with_run_field("status", "great")), "'great' is not one of"),
        (json.dumps(_with_run_field("seed", "zero")), "seed: expected an integer"),
        (json.dumps(_with_run_field("history", [{"epoch": 1}])), "missing field 'step'"),
        (json.dumps(_with_run_field("training_runs", 0)), "costs at least one run"),
    ],
)
def test_load_says_why_a_results_file_cannot_be_read(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(AlraoUserError, match=expected) as error:
        load_study(tmp_path)
    assert "results.json" in error.value.message


def test_load_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(AlraoUserError, match="no such run directory") as error:
        load_study(tmp_path / "nowhere")
    assert "nowhere" in error.value.message and error.value.hint


def test_load_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(AlraoUserError, match="not a directory"):
        load_study(tmp_path / "notes.txt")


def test_load_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(AlraoUserError, match=r"not a run directory \(no results.json"):
        load_study(tmp_path)


@pytest.mark.parametrize(
    ("written", "method", "lr", "seed", "read"),
    [
        ("mlp|adam|seed=0", "adam", 1e-3, 0, "mlp|adam|lr=0.001|seed=0"),  # before Adam's key had its rate
        ("mlp|adam|lr=0.001|seed=0", "adam", 1e-3, 0, "mlp|adam|lr=0.001|seed=0"),
        ("mlp|sgd|lr=0.0316227766017|seed=1", "sgd", 0.0316227766017, 1, "mlp|sgd|lr=0.0316227766017|seed=1"),
        ("a.py:Net|alrao|seed=2", "alrao", None, 2, "a.py:Net|alrao|seed=2"),
    ],
)
def test_older_keys_are_read_as_the_plan_now_writes_them(tmp_path: Path, written, method, lr, seed, read) -> None:
    from alrao_cli.results.records import run_key

    study = StudyResult(kind="compare", config={}, runs=(run(written, method=method, lr=lr, seed=seed),),
                        started="2026-01-01T10:00:00")
    save_study(tmp_path, study)
    [loaded] = load_study(tmp_path).runs
    assert loaded.key == read
    label = written.split("|")[0]
    assert loaded.key == run_key(label, method, lr, seed)  # so --resume finds it done


def test_a_result_saved_before_it_counted_its_training_runs_reads_as_one_run(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(_without_run_field("training_runs")))
    assert [run.training_runs for run in load_study(tmp_path).runs] == [1, 1, 1]
