"""MLR-SNet and reversible-HD as registered methods: meta data from the training split, the
transferred net, the order of a transfer screen's runs, the tuning's checkpoints."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from support import quick_flags

from alrao_cli.config.schema import build_config
from alrao_cli.data.datasets import InMemoryDataset
from alrao_cli.errors import AlraoUserError
from alrao_cli.results.fidelity import table_from_runs
from alrao_cli.results.records import RunResult
from alrao_cli.learned import ScheduleNet, load_schedule_net, save_schedule_net
from alrao_cli.study.driver import run_study
from alrao_cli.study.methods import get_method
from alrao_cli.study.methods.base import LearnerContext, RunData
from alrao_cli.study.methods.meta_set import held_out, meta_batch
from alrao_cli.study.plan import plan_study
from alrao_cli.study.spec import MethodSpec
from tests.support import invoke, load_results

QUICK = quick_flags(200, epochs=1, batch_size=50)


def numbered_set(size: int) -> InMemoryDataset:
    """Each example's input is its own index: a drawn batch says which examples it holds."""
    return InMemoryDataset(torch.arange(size, dtype=torch.float32).unsqueeze(1), torch.arange(size) % 3)


def test_meta_batches_are_distinct_training_examples_and_the_same_for_the_same_draw():
    train = numbered_set(50)
    x, y = meta_batch(train, 8, seed=3, draw=5)
    drawn = x.squeeze(1).long()
    assert len(set(drawn.tolist())) == 8 and bool((drawn < 50).all())
    assert torch.equal(y, drawn % 3)  # the labels go with their inputs
    assert torch.equal(meta_batch(train, 8, seed=3, draw=5)[0], x)
    assert not torch.equal(meta_batch(train, 8, seed=3, draw=6)[0], x)


def test_held_out_examples_are_disjoint_from_the_rest_and_cover_the_split():
    rest, apart = held_out(100, 30, seed=1)
    assert len(apart) == 30 and len(rest) == 70
    assert set(rest.tolist()).isdisjoint(apart.tolist())
    assert set(rest.tolist()) | set(apart.tolist()) == set(range(100))
    assert len(held_out(5, 50, seed=1)[0]) == 1  # one example always stays to train on


def transfer_config(*archs: str, **values):
    return build_config(None, {"archs": list(archs), "method": "mlrsnet-transfer", "subset": 200, "epochs": 1, **values})


def test_transfer_meta_trains_on_the_first_architecture_unless_told_and_runs_it_first():
    plan = plan_study(transfer_config("mlp", "cnn1d"), "screen")
    method = get_method("mlrsnet-transfer")
    assert {spec.method.options.meta_arch for spec in plan.runs} == {"mlp"}
    assert [method.stage(spec) for spec in plan.runs] == [0, 1]
    plan = plan_study(transfer_config("mlp", "cnn1d", meta_arch="cnn1d"), "screen")
    assert [method.stage(spec) for spec in plan.runs] == [1, 0]


def test_a_meta_arch_outside_the_study_or_a_schedule_net_with_transfer_is_refused():
    with pytest.raises(AlraoUserError, match="--meta-arch 'lenet' is not an architecture of this study"):
        plan_study(transfer_config("mlp", "cnn1d", meta_arch="lenet"), "screen")
    with pytest.raises(AlraoUserError, match="meta-trains the net it transfers"):
        plan_study(transfer_config("mlp", schedule_net="net.pt"), "screen")


def test_a_meta_test_run_whose_net_was_never_saved_fails_with_the_reason(tmp_path):
    spec = MethodSpec("mlrsnet-transfer", options=get_method("mlrsnet-transfer").options_type(meta_arch="other"))
    run = RunData("this", numbered_set(20), 4, 5, run_dir=tmp_path)
    context = LearnerContext(3, "classification", 0, total_steps=5, run=run)
    learner = get_method("mlrsnet-transfer").learner(nn.Linear(1, 3), spec, context)
    with pytest.raises(AlraoUserError, match="the meta-train run on other did not finish"):
        learner.before_training(lambda: None)


def test_a_transfer_screen_runs_the_meta_arch_first_wherever_it_is_listed_and_saves_its_net(tmp_path):
    out = tmp_path / "run"
    config = transfer_config("mlp", "cnn1d", meta_arch="cnn1d", out=str(out), plots=False, batch_size=50)
    outcome = run_study(config, "screen")
    assert outcome.exit_code == 0
    runs = {run.arch: run for run in outcome.study.runs}
    assert [run.status for run in runs.values()] == ["ok", "ok"]
    assert runs["cnn1d"].explanation["mode"] == "meta-train" and runs["mlp"].explanation["mode"] == "meta-test"
    net = load_schedule_net(out / "schedule-nets" / "cnn1d-seed0.pt")
    assert isinstance(net, ScheduleNet)
    trajectory = runs["mlp"].explanation["lr_trajectory"]
    assert trajectory and all(0 < rate <= 1.0 for _, rate in trajectory)  # gamma = 1 bounds the rate
    assert runs["mlp"].history[-1].rates["lr"] > 0


def test_a_net_saved_by_one_screen_drives_another(tmp_path):
    net = ScheduleNet(hidden_size=8)
    save_schedule_net(net, tmp_path / "net.pt")
    result = invoke("screen", "mlp", "--method", "mlrsnet", "--schedule-net", str(tmp_path / "net.pt"),
                    *QUICK, "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    (run,) = load_results(tmp_path / "r")["runs"]
    assert run["status"] == "ok" and run["explanation"]["mode"] == "meta-test"
    expected = float(net.advance(torch.tensor(2.3)))  # its first rate: the net on the first loss, about ln 10
    assert run["explanation"]["lr_trajectory"][0][1] == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    (b"not a torch file", "cannot be read as a saved net"),
])
def test_a_missing_or_unreadable_schedule_net_is_one_line_before_training(tmp_path, content, message):
    path = tmp_path / "net.pt"
    if content is not None:
        path.write_bytes(content)
    result = invoke("screen", "mlp", "--method", "mlrsnet", "--schedule-net", str(path), *QUICK,
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def test_an_incompatible_schedule_net_names_what_does_not_fit(tmp_path):
    path = tmp_path / "net.pt"
    saved = {"format": "alrao-mlr-snet", "version": 1, "config": {"hidden_size": 8, "gamma": 1.0},
             "weights": {name: p.detach() for name, p in ScheduleNet(hidden_size=4).named_parameters()}}
    torch.save(saved, path)
    result = invoke("screen", "mlp", "--method", "mlrsnet", "--schedule-net", str(path), *QUICK,
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "does not fit its config" in result.output


def tiny_reversible(seed: int = 0, meta_iters: int = 3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 3))
    options = get_method("reversible-hd").options_type(meta_iters=meta_iters, blocks=2, meta_size=10)
    run = RunData("tiny", numbered_set(40), 10, 3)
    context = LearnerContext(3, "classification", 0, total_steps=6, run=run)
    return get_method("reversible-hd").learner(model, MethodSpec("reversible-hd", options=options), context)


def test_reversible_tuning_interrupted_after_a_round_resumes_at_the_next_one():
    reference = tiny_reversible()
    reference.before_training(lambda: None)
    saved = []

    def save_then_stop():
        saved.append(reference_state(interrupted))
        raise KeyboardInterrupt

    interrupted = tiny_reversible()
    with pytest.raises(KeyboardInterrupt):
        interrupted.before_training(save_then_stop)
    resumed = tiny_reversible(seed=1)
    resumed.load_state_dict(saved[0])
    assert len(resumed.rounds) == 1
    resumed.before_training(lambda: None)
    assert resumed.rounds == reference.rounds and resumed.tuned_loss == reference.tuned_loss
    assert torch.equal(resumed.tuner.schedule.alpha, reference.tuner.schedule.alpha)
    assert reference.tuned_loss < reference.rounds[0]  # three rounds of tuning lowered the held-apart loss
    json.dumps(reference.explain(), allow_nan=False)


def reference_state(learner):
    """The learner's state as a checkpoint keeps it (a deep copy)."""
    import io

    buffer = io.BytesIO()
    torch.save(learner.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_reversible_hd_under_a_time_budget_is_refused_in_one_line(tmp_path):
    result = invoke("screen", "mlp", "--method", "reversible-hd", "--subset", "200", "--time-budget", "5",
                    "--no-plots", "--out", str(tmp_path / "r"))
    assert result.exit_code != 0
    assert "reversible-hd tunes a schedule over a run of known length" in result.output


def test_a_reversible_hd_result_counts_its_meta_rounds_as_runs_in_a_fidelity_table(tmp_path):
    """Its cost against a grid is meta_iters + 1 runs per result, saved with the result."""
    out = tmp_path / "r"
    result = invoke("screen", "mlp", "--method", "reversible-hd", "--meta-iters", "2", *quick_flags(100, steps=4),
                    "--no-plots", "--out", str(out))
    assert result.exit_code == 0, result.output
    [saved] = load_results(out)["runs"]
    assert saved["training_runs"] == 3
    runs = [RunResult.from_dict(saved), replace(RunResult.from_dict(saved), method="adam", training_runs=1)]
    assert table_from_runs("reversible-hd", runs, ["reversible-hd"]).runs == 3
    assert table_from_runs("both", runs).runs == 4
