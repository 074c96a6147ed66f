"""MLR-SNet (Shu et al.): a small LSTM maps the training loss to SGD's rate, meta-learned online.

Three ways to run it, all one run per architecture and seed:

* ``mlrsnet`` meta-trains a fresh net on each architecture (the paper's meta-train mode,
  Algorithm 1; :class:`~alrao_cli.learned.MLRSNetTrainer`) and saves it in the run
  directory, ``schedule-nets/ARCH-seedS.pt``.
* ``mlrsnet --schedule-net PATH`` drives plain SGD with a saved, meta-trained net whose
  parameters stay fixed (meta-test, Eq. 12; :class:`~alrao_cli.learned.MLRSNetSGD`).
* ``mlrsnet-transfer`` meta-trains on one architecture (the first, or ``--meta-arch``) and
  reuses that net, frozen, for every other architecture of the screen: the paper's
  "plug-and-play" transfer, at the cost of one meta-train run plus plain SGD runs.

The meta minibatches (the paper's validation data) are drawn from the training split
(:mod:`~alrao_cli.study.methods.meta_set`), never the validation split that ranks the
models. Unlike the paper, whose meta set is held apart from the examples the model trains
on, they are drawn from the examples every method trains on, so that all methods of a screen
learn from the same data: the meta loss is then the one-step look-ahead loss on a fresh
minibatch rather than on unseen data. The net is updated "twice per epoch" (App. B, image
tasks) unless ``t_val`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from alrao_cli.errors import AlraoUserError
from alrao_cli.learned import MLRSNetSGD, MLRSNetTrainer, ScheduleNet, load_schedule_net, save_schedule_net
from alrao_cli.learned.mlrsnet import DEFAULT_META_LR, DEFAULT_META_WEIGHT_DECAY
from alrao_cli.learned.schedule_net import DEFAULT_GAMMA, DEFAULT_HIDDEN_SIZE
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import Learner, LearnerContext, TorchOptimizerLearner, TrainingMethod
from alrao_cli.study.methods.meta_set import meta_batch
from alrao_cli.study.spec import MethodOptions, RunSpec
from alrao_cli.util.files import safe_name

MLRSNET_PAPER = "Shu et al. 2022, MLR-SNet: Transferable LR schedules for heterogeneous tasks"
NETS_FOLDER = "schedule-nets"  # in the run directory
TRAJECTORY_POINTS = 256  # at most this many (step, rate) pairs are kept per run


def net_path(run_dir: Path, label: str, seed: int) -> Path:
    """Where a run directory keeps the net meta-trained on ``label`` with ``seed``."""
    return run_dir / NETS_FOLDER / f"{safe_name(label)}-seed{seed}.pt"


@dataclass(frozen=True, slots=True)
class MLRSNetOptions(MethodOptions):
    """MLR-SNet's settings. ``momentum`` and ``weight_decay`` are the study's, as for SGD, so
    that it is compared with SGD on equal terms (the paper: vanilla SGD, weight decay 5e-4).
    ``t_val``: steps between meta updates; None is twice per epoch (the paper's image
    tasks). ``schedule_net``: a saved net to drive SGD with, frozen (meta-test)."""

    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule_net: str | None = None
    t_val: int | None = None
    meta_lr: float = DEFAULT_META_LR
    meta_weight_decay: float = DEFAULT_META_WEIGHT_DECAY
    hidden_size: int = DEFAULT_HIDDEN_SIZE
    gamma: float = DEFAULT_GAMMA


@dataclass(frozen=True, slots=True)
class MLRSNetTransferOptions(MLRSNetOptions):
    """MLR-SNet's, and the architecture to meta-train on (None: the screen's first; the plan
    fills it in, so that every run of the study names the same one)."""

    meta_arch: str | None = None


class MLRSNetLearner(TorchOptimizerLearner):
    """A model trained by SGD at the rate the schedule net gives, learning the net or not."""

    def __init__(self, driver: MLRSNetSGD | MLRSNetTrainer, context: LearnerContext, every: int) -> None:
        super().__init__(driver.model, driver.optimizer, context.task)
        self.driver = driver
        self.context = context
        self.every = every  # steps between two points of the saved trajectory
        self.meta_seed = context.seed  # the meta minibatches' draws: kept in the checkpoint with the rest
        self.trajectory: list[tuple[int, float]] = []
        self.missing_net: str | None = None  # why a meta-test net could not be loaded, if it could not

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        if isinstance(self.driver, MLRSNetTrainer):
            run, draw = self.context.run, self.driver.steps // self.driver.t_val
            device = x.device

            def meta() -> tuple[Tensor, Tensor]:
                mx, my = meta_batch(run.train, run.batch_size, self.meta_seed, draw)
                return mx.to(device), my.to(device)

            loss = self.driver.step(x, y, meta)
        else:
            loss = self.driver.step(x, y)
        if (self.driver.steps - 1) % self.every == 0:
            self.trajectory.append((self.driver.steps, float(self.driver.current_lr)))
        return loss

    def before_training(self, save) -> None:
        if self.missing_net is not None:
            raise AlraoUserError(self.missing_net)

    def finish(self) -> None:
        run = self.context.run
        if isinstance(self.driver, MLRSNetTrainer) and run is not None and run.run_dir is not None:
            save_schedule_net(self.driver.net, net_path(run.run_dir, run.label, self.context.seed), run.run_dir)

    def rates(self) -> dict[str, float]:
        return {} if self.driver.current_lr is None else {"lr": self.driver.current_lr}

    def explain(self) -> dict[str, Any]:
        mode = "meta-train" if isinstance(self.driver, MLRSNetTrainer) else "meta-test"
        return {"mode": mode, "rates": self.rates(), "lr_trajectory": [list(point) for point in self.trajectory]}

    def state_dict(self) -> dict[str, Any]:
        return {"driver": self.driver.state_dict(), "trajectory": list(self.trajectory), "meta_seed": self.meta_seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.driver.load_state_dict(state["driver"])
        self.trajectory = [tuple(point) for point in state["trajectory"]]
        self.meta_seed = state["meta_seed"]
        self.missing_net = None  # the net's weights came with the checkpoint


def _loss_fn(task: str):
    if task == "regression":
        from alrao_cli.study.methods.base import gaussian_nll

        return lambda outputs, y: gaussian_nll(outputs, y).mean()
    return torch.nn.functional.cross_entropy


def _needs_run(name: str, context: LearnerContext) -> None:
    if context.run is None:
        raise AlraoUserError(f"the method {name} learns its rate from training data, and has none here")


def _learner(name: str, model, options: MLRSNetOptions, context: LearnerContext, frozen: Path | None,
             missing: str | None = None) -> Learner:
    """Meta-train a fresh net (``frozen`` None) or drive SGD with the net saved at ``frozen``."""
    _needs_run(name, context)
    run = context.run
    loss_fn = _loss_fn(context.task)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    every = max(1, (context.total_steps or 0) // TRAJECTORY_POINTS)
    if frozen is None:
        t_val = options.t_val or max(1, run.steps_per_epoch // 2)
        net = ScheduleNet(options.hidden_size, options.gamma).to(device)
        driver = MLRSNetTrainer(
            model, net, meta_lr=options.meta_lr, t_val=t_val, momentum=options.momentum,
            weight_decay=options.weight_decay, meta_weight_decay=options.meta_weight_decay, loss_fn=loss_fn,
        )
        return MLRSNetLearner(driver, context, every)
    net = _loaded(name, frozen) if frozen.is_file() or missing is None else ScheduleNet(options.hidden_size, options.gamma)
    driver = MLRSNetSGD(model, net.to(device), momentum=options.momentum, weight_decay=options.weight_decay, loss_fn=loss_fn)
    learner = MLRSNetLearner(driver, context, every)
    learner.missing_net = None if frozen.is_file() else missing
    return learner


def _loaded(name: str, path: Path) -> ScheduleNet:
    try:
        return load_schedule_net(path)
    except ValueError as error:
        raise AlraoUserError(f"{name}: {error}", hint="--schedule-net takes a file saved by an mlrsnet run "
                             f"(RUN_DIR/{NETS_FOLDER}/ARCH-seedS.pt)") from None


def check_schedule_net(path: str) -> None:
    """Refuse, in one line, a ``--schedule-net`` file that is missing or not a saved net."""
    _loaded("--schedule-net", Path(path))


@register_method("mlrsnet")
class MLRSNetMethod(TrainingMethod):
    """MLR-SNet: SGD at the rate an LSTM reads off the training loss, meta-learned in the same run.

    Shu et al., Algorithm 1 (meta-train): every t_val steps the net takes an Adam step on the
    meta loss after a one-step look-ahead of the SGD update, and the model steps at the rate
    of the updated net. With ``--schedule-net PATH``, a saved net drives SGD frozen (Eq. 12).
    Each meta-trained net is saved in RUN_DIR/schedule-nets/ for reuse.
    """

    label = "MLR-SNet"
    paper = MLRSNET_PAPER
    options_type = MLRSNetOptions
    cost = "one run (a look-ahead meta step every t_val steps, twice an epoch by default)"

    def settle(self, runs: list[RunSpec]) -> list[RunSpec]:
        """A ``--schedule-net`` that is missing or not a saved net is refused before anything trains."""
        if runs and self.options(runs[0].method).schedule_net:
            check_schedule_net(self.options(runs[0].method).schedule_net)
        return runs

    def learner(self, model, spec, context):
        options: MLRSNetOptions = self.options(spec)
        frozen = Path(options.schedule_net) if options.schedule_net else None
        return _learner(self.name, model, options, context, frozen)


@register_method("mlrsnet-transfer")
class MLRSNetTransferMethod(TrainingMethod):
    """MLR-SNet transferred: meta-trained on one architecture, reused frozen on all the others.

    The paper's plug-and-play use (Sec. 3.2, meta-test): the net meta-trained on the first
    architecture (or --meta-arch) is saved in the run directory, and drives plain SGD for every
    other architecture of the screen, with the same seed.
    """

    label = "MLR-SNet-T"
    paper = MLRSNET_PAPER
    options_type = MLRSNetTransferOptions
    cost = "one meta-train run on the meta architecture, then one SGD run per other architecture"

    def settle(self, runs: list[RunSpec]) -> list[RunSpec]:
        if not runs:
            return runs
        options: MLRSNetTransferOptions = self.options(runs[0].method)
        if options.schedule_net:
            raise AlraoUserError(
                "mlrsnet-transfer meta-trains the net it transfers; --schedule-net names one already trained",
                hint="to reuse a saved net on every architecture: --method mlrsnet --schedule-net PATH",
            )
        labels = list(dict.fromkeys(spec.label for spec in runs))
        meta_arch = options.meta_arch or labels[0]
        if meta_arch not in labels:
            raise AlraoUserError(
                f"--meta-arch {meta_arch!r} is not an architecture of this study",
                hint=f"its architectures: {', '.join(labels)}",
            )
        return [replace(spec, method=replace(spec.method, options=replace(self.options(spec.method), meta_arch=meta_arch)))
                for spec in runs]

    def stage(self, spec: RunSpec) -> int:
        return 0 if spec.label == self.options(spec.method).meta_arch else 1

    def learner(self, model, spec, context):
        options: MLRSNetTransferOptions = self.options(spec)
        _needs_run(self.name, context)
        run = context.run
        if options.meta_arch is None or run.label == options.meta_arch:
            return _learner(self.name, model, options, context, None)
        if run.run_dir is None:
            raise AlraoUserError(f"the method {self.name} needs a run directory to share its net through")
        path = net_path(run.run_dir, options.meta_arch, context.seed)
        missing = (f"no meta-trained net for seed {context.seed}: the meta-train run on {options.meta_arch} "
                   f"did not finish ({path} is missing)")
        return _learner(self.name, model, options, context, path, missing)
