"""Reversible-HD: a per-layer, per-block rate and momentum schedule tuned by exact hypergradients.

Maclaurin, Duvenaud & Adams (2015): the loss after a whole run of SGD with momentum is a
differentiable function of the schedule, and reversing the run step by step in exact
arithmetic (:mod:`alrao_cli.learned.reversible`) gives its gradient with memory that does
not grow with the number of steps. Before the run proper, ``meta_iters`` rounds each train
the model from its initial weights over the run's whole length (Algorithm 1), reverse that
run (Algorithm 2), and step the schedule against the hypergradient; the run proper then
trains with the tuned schedule. Its cost is ``meta_iters + 1`` runs, each round about four
plain runs of compute (a forward run, then a reverse one of a gradient and a
Hessian-vector product per step).

The loss the schedule is tuned for is measured on ``meta_size`` examples held apart from
the training split (:func:`~alrao_cli.study.methods.meta_set.held_out`); the rounds train on
the rest of it. The validation split, which ranks the models, is never seen; the run
proper trains on the whole training split, like every other method.

For small models: each step of a round recomputes a gradient with its graph, so a round
costs several plain runs (docs/methods.md gives the sizes measured here). BatchNorm's
running statistics are not part of the reversed state: the rounds use batch statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from alrao_cli.data.batches import batches, mixed_seed, num_batches
from alrao_cli.data.datasets import InMemoryDataset
from alrao_cli.errors import AlraoUserError
from alrao_cli.learned import ReversibleProblem, Schedule, ScheduleTuner, hypergradient, validation_loss
from alrao_cli.learned.reversible import DEFAULT_META_LR
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import Learner, LearnerContext, TorchOptimizerLearner, TrainingMethod, rates_of
from alrao_cli.study.methods.meta_set import examples, held_out
from alrao_cli.study.spec import MethodOptions, MethodSpec

REVERSIBLE_PAPER = "Maclaurin, Duvenaud & Adams 2015, Gradient-based hyperparameter optimization through reversible learning"


@dataclass(frozen=True, slots=True)
class ReversibleHDOptions(MethodOptions):
    """``meta_iters``: rounds of hypergradient steps (the study's, ``--meta-iters``).
    ``blocks``: the run's steps are cut into this many equal blocks, each with its own rate
    and momentum per parameter tensor. ``initial_decay``: the momentum decay γ every block
    starts from (0.9, the paper's; not the study's ``momentum``, which is SGD's). ``meta_size``: training examples held apart to measure the tuned
    loss on. The initial rate α is the run's ``lr``."""

    meta_iters: int = 5
    blocks: int = 4
    initial_decay: float = 0.9
    meta_size: int = 256
    meta_lr: float = DEFAULT_META_LR


class _RoundBatches:
    """The minibatch of step t of a round, over the training examples not held apart.

    The reverse pass asks for the steps backwards, so one epoch's batches are kept at a time.
    """

    def __init__(self, dataset, batch_size: int, seed: int, device: torch.device) -> None:
        self.dataset, self.batch_size, self.seed, self.device = dataset, batch_size, seed, device
        self.per_epoch = num_batches(dataset, batch_size)
        self.epoch: int | None = None
        self.cached: list[tuple[Tensor, Tensor]] = []

    def __call__(self, t: int) -> tuple[Tensor, Tensor, int]:
        epoch, index = divmod(t, self.per_epoch)
        if epoch != self.epoch:
            self.cached = [
                (x.to(self.device), y.to(self.device))
                for x, y in batches(self.dataset, self.batch_size, shuffle=True, seed=self.seed, epoch=epoch)
            ]
            self.epoch = epoch
        x, y = self.cached[index]
        return x, y, t


class ReversibleHDLearner(TorchOptimizerLearner):
    """The model trained by Algorithm 1's update in floating point, at the tuned schedule."""

    def __init__(self, model: nn.Module, options: ReversibleHDOptions, lr: float, context: LearnerContext) -> None:
        self.named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        # No torch optimizer: the update v = γv - (1-γ)g, w += αv is written out in train_step.
        super().__init__(model, torch.optim.SGD([p for _, p in self.named], lr=0.0), context.task)
        self.options, self.context = options, context
        self.total = context.total_steps
        blocks = max(1, min(options.blocks, self.total))
        self.tuner = ScheduleTuner(Schedule.constant(blocks, len(self.named), lr, options.initial_decay), options.meta_lr)
        self.rounds: list[float] = []  # the held-apart loss of each round's schedule, before its step
        self.tuned_loss: float | None = None  # the held-apart loss the final schedule reaches
        self.velocity = [torch.zeros_like(p) for _, p in self.named]
        self.steps = 0

    # -- the meta phase ------------------------------------------------------------------
    def before_training(self, save) -> None:
        if self.tuned_loss is not None:
            return
        problem, w0 = self._problem()
        while len(self.rounds) < self.options.meta_iters:
            result = hypergradient(problem, w0, self.tuner.schedule)
            self.rounds.append(result.val_loss)
            self.tuner.step(result)
            save()  # a round costs several runs: an interruption must not lose it
        self.tuned_loss = validation_loss(problem, w0, self.tuner.schedule)
        save()

    def _problem(self) -> tuple[ReversibleProblem, Tensor]:
        run = self.context.run
        device = self.named[0][1].device if self.named else torch.device("cpu")
        rest, apart = held_out(len(run.train), self.options.meta_size, self.context.seed)
        train = run.train.select(rest) if isinstance(run.train, InMemoryDataset) else torch.utils.data.Subset(run.train, rest.tolist())
        x_meta, y_meta = examples(run.train, apart)
        names = [name for name, _ in self.named]
        shapes = [p.shape for _, p in self.named]
        sizes = [p.numel() for _, p in self.named]
        buffers = dict(self.module.named_buffers())
        seed = self.context.seed

        def loss(w: Tensor, batch: tuple[Tensor, Tensor, int]) -> Tensor:
            x, y, t = batch
            weights = {name: part.view(shape) for name, part, shape in zip(names, w.split(sizes), shapes)}
            state = {name: b.clone() for name, b in buffers.items()}  # BatchNorm's statistics are not reversed
            with torch.random.fork_rng(devices=[]):  # dropout draws the same masks in both passes
                torch.manual_seed(mixed_seed("reversible-hd", seed, t))
                outputs = functional_call(self.module, {**state, **weights}, (x,))
            return self._example_losses(outputs, y).mean()

        problem = ReversibleProblem(
            loss=loss, train_batch=_RoundBatches(train, run.batch_size, seed, device),
            val_batch=(x_meta.to(device), y_meta.to(device), -1), layer_sizes=sizes, steps=self.total,
        )
        w0 = torch.cat([p.detach().flatten() for _, p in self.named])
        return problem, w0

    # -- the run proper ------------------------------------------------------------------
    def _block(self) -> int:
        blocks = self.tuner.schedule.alpha.shape[0]
        return min(self.steps * blocks // self.total, blocks - 1)

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        params = [p for _, p in self.named]
        loss = self._example_losses(self.module(x), y).mean()
        grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
        block = self._block()
        alpha, gamma = self.tuner.schedule.alpha[block].tolist(), self.tuner.schedule.gamma[block].tolist()
        with torch.no_grad():
            for p, v, g, a, c in zip(params, self.velocity, grads, alpha, gamma):
                v.mul_(c).add_(g, alpha=-(1 - c))
                p.add_(v, alpha=a)
        self.steps += 1
        return loss.detach()

    def rates(self) -> dict[str, float]:
        return rates_of(self.tuner.schedule.alpha[self._block()].tolist())

    def explain(self) -> dict[str, Any]:
        schedule = self.tuner.schedule
        return {
            "rates": self.rates(), "schedule_alpha": schedule.alpha.tolist(), "schedule_gamma": schedule.gamma.tolist(),
            "meta_losses": list(self.rounds), "tuned_meta_loss": self.tuned_loss,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.module.state_dict(), "velocity": [v.clone() for v in self.velocity], "steps": self.steps,
            "tuner": self.tuner.state_dict(), "rounds": list(self.rounds), "tuned_loss": self.tuned_loss,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        for v, saved in zip(self.velocity, state["velocity"]):
            v.copy_(saved)
        self.steps = state["steps"]
        self.tuner.load_state_dict(state["tuner"])
        self.rounds = list(state["rounds"])
        self.tuned_loss = state["tuned_loss"]


@register_method("reversible-hd")
class ReversibleHDMethod(TrainingMethod):
    """Reversible-HD: per-layer, per-block rate and momentum schedules tuned by exact hypergradients.

    Maclaurin et al. 2015, Algorithms 1-2: ``--meta-iters`` rounds each train over the run's
    whole length and reverse it exactly (fixed-point weights, the bits momentum destroys
    kept aside) to get d(loss)/d(schedule); then the run proper trains with the tuned
    schedule. The loss is measured on training examples held apart. For small models.
    """

    label = "Reversible-HD"
    paper = REVERSIBLE_PAPER
    default_lr = 0.1
    options_type = ReversibleHDOptions
    cost = "meta_iters + 1 runs (each meta round a forward and a reverse run, about 4 plain runs of compute)"

    def training_runs(self, spec: MethodSpec) -> int:
        return self.options(spec).meta_iters + 1

    def learner(self, model, spec, context) -> Learner:
        options: ReversibleHDOptions = self.options(spec)
        if context.total_steps is None:
            raise AlraoUserError(
                "reversible-hd tunes a schedule over a run of known length, and a --time-budget run has none",
                hint="give --epochs or --steps",
            )
        if context.run is None:
            raise AlraoUserError("the method reversible-hd tunes its schedule on training data, and has none here")
        return ReversibleHDLearner(model, options, self.rate(spec), context)
