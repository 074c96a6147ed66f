"""1cycle after an LR range test, inside one run (Smith; the layer-wise discussion's "Baseline 1").

The run's first training batches are the range test: from the initial weights, SGD takes
one step per batch at a rate growing exponentially from ``start_lr`` to ``end_lr``, until
the smoothed loss diverges or ``range_steps`` losses are measured
(:func:`~alrao_cli.optimizers.lr_range_test`, whose suggestion rule is the rate of the
lowest smoothed loss divided by 10). Then the initial weights and optimizer come back, and
the rest of the run trains with 1cycle (:func:`~alrao_cli.optimizers.one_cycle`) peaking at
the suggested rate. The batch on which the test ends is the first step of the cycle, so
the test costs the steps it took before that one (``range_test_steps`` in ``explain()``),
out of the run's budget: 1cycle gets ``total_steps - range_test_steps``.

The range test is driven one batch at a time by the training loop, whereas
:func:`~alrao_cli.optimizers.lr_range_test` calls its ``step`` in a loop of its own: the
learner replays the losses measured so far into it at every step, so that the sweep, the
stopping rule and the suggestion are that function's alone (a few hundred floats per
step, while the test runs).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import OneCycleLR

from alrao_cli.config.schema import DEFAULTS
from alrao_cli.errors import AlraoUserError
from alrao_cli.optimizers import RangeTestResult, lr_range_test, one_cycle
from alrao_cli.study.methods import register_method
from alrao_cli.study.methods.base import TorchOptimizerLearner, TrainingMethod
from alrao_cli.study.spec import MethodOptions

MIN_CYCLE_STEPS = 3  # fewer, and OneCycleLR's three phases give negative rates


@dataclass(frozen=True, slots=True)
class OneCycleOptions(MethodOptions):
    """The range test's sweep and stopping rule, the 1cycle shape, SGD's momentum and decay.

    Range test (:func:`~alrao_cli.optimizers.lr_range_test`): ``start_lr=1e-7`` to
    ``end_lr=10`` in at most ``range_steps=100`` steps, smoothing 0.98, stop when the
    smoothed loss exceeds ``diverge_factor=4`` times its best: fastai's ``lr_find``
    defaults, which made Smith's test with an exponential sweep the usual one.
    1cycle (:func:`~alrao_cli.optimizers.one_cycle`): from ``max_lr / div_factor`` (20,
    Smith's max/min ratio in the layer-wise discussion) up over ``pct_start=0.45`` of the
    steps, down over as many, then to ``max_lr / (div_factor * final_div_factor)``
    (``final_div_factor=1e4``, OneCycleLR's default). ``sgd_momentum=0.9`` is SGD's
    momentum during the range test; 1cycle then cycles it 0.95 -> 0.85 -> 0.95 (Smith's
    values). It is named apart from the study setting ``momentum`` (0 by default, plain
    SGD's), which would otherwise replace it.
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    range_steps: int = 100
    smoothing: float = 0.98
    diverge_factor: float = 4.0
    div_factor: float = 20.0
    pct_start: float = 0.45
    final_div_factor: float = 1e4
    sgd_momentum: float = 0.9
    weight_decay: float = DEFAULTS.weight_decay


class _LossNotMeasured(Exception):
    """Raised into the range test when it asks for a loss not measured yet; carries the
    rate at which the next step must measure it."""

    def __init__(self, lr: float) -> None:
        super().__init__(lr)
        self.lr = lr


class OneCycleLearner(TorchOptimizerLearner):
    """SGD that runs the LR range test on its first batches, then 1cycle at its suggestion.

    State: the losses the range test measured (its whole record: replaying them gives
    the result again), and either the initial weights and optimizer (while the test runs)
    or the 1cycle schedule (after it).
    """

    def __init__(
        self, module: nn.Module, optimizer: torch.optim.SGD, task: str, options: OneCycleOptions, total_steps: int
    ) -> None:
        super().__init__(module, optimizer, task)
        self.options = options
        self.total_steps = total_steps
        self.measured: list[float] = []  # the range test's losses, one per step, before that step's update
        self.initial: dict[str, Any] | None = {
            "model": {name: value.detach().clone() for name, value in module.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.state_dict()),
        }
        self.schedule: OneCycleLR | None = None
        self._replay()  # checks the range test's options

    # -- the range test ------------------------------------------------------------------
    def range_test(self) -> RangeTestResult | None:
        """The range test's result once it has ended; None while it runs."""
        outcome = self._replay()
        return outcome if isinstance(outcome, RangeTestResult) else None

    @property
    def range_test_steps(self) -> int:
        """The steps the range test took and training then threw away: its cost. The batch
        that ended the test is not one of them: it is 1cycle's first step."""
        return len(self.measured) - (self.schedule is not None)

    def _replay(self) -> RangeTestResult | float:
        """The range test over the losses measured so far: its result if they suffice to
        end it, else the rate of its next step."""
        losses = iter(self.measured)

        def step(lr: float) -> float:
            loss = next(losses, None)
            if loss is None:
                raise _LossNotMeasured(lr)
            return loss

        o = self.options
        try:
            return lr_range_test(
                step, start_lr=o.start_lr, end_lr=o.end_lr, num_steps=o.range_steps, smoothing=o.smoothing,
                diverge_factor=o.diverge_factor,
            )
        except _LossNotMeasured as needed:
            return needed.lr
        except ValueError as error:  # options out of range, or a loss that is not finite from the start
            raise AlraoUserError(f"onecycle: the LR range test: {error}") from None

    def _start_cycle(self) -> None:
        """Back to the initial weights and optimizer state, then 1cycle at the suggestion."""
        assert self.initial is not None
        self.module.load_state_dict(self.initial["model"])
        self.optimizer.load_state_dict(self.initial["optimizer"])
        self.initial = None
        self.schedule = self._cycle()

    def _cycle(self) -> OneCycleLR:
        result = self.range_test()
        assert result is not None, "1cycle starts once the range test has ended"
        o = self.options
        return one_cycle(
            self.optimizer, result.suggested_lr, self.total_steps - len(self.measured) + 1,
            div_factor=o.div_factor, pct_start=o.pct_start, final_div_factor=o.final_div_factor,
        )

    # -- training ------------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        if self.schedule is None:
            lr = self._replay()
            assert not isinstance(lr, RangeTestResult)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._example_losses(self.module(x), y).mean()
            self.measured.append(float(loss.detach()))  # a host sync per step, while the test runs only
            if not isinstance(self._replay(), RangeTestResult):
                loss.backward()
                self.optimizer.step()
                return loss.detach()
            self._start_cycle()  # this batch is the cycle's first step, from the initial weights
        assert self.schedule is not None
        loss = super().train_step(x, y)
        if self.schedule.last_epoch < self.schedule.total_steps - 1:  # past its end, the last rate holds
            self.schedule.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["range_test_losses"] = list(self.measured)
        if self.schedule is None:
            state["initial"] = self.initial
        else:
            state["schedule"] = self.schedule.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.measured = [float(loss) for loss in state["range_test_losses"]]
        if "schedule" in state:
            self.initial = None
            # Built first: OneCycleLR sets the optimizer's rate, which the optimizer's state then restores.
            self.schedule = self._cycle()
            super().load_state_dict(state)
            self.schedule.load_state_dict(state["schedule"])
        else:
            self.schedule = None
            self.initial = state["initial"]
            super().load_state_dict(state)

    def explain(self) -> dict[str, Any]:
        """The rate now, the range test's record and suggestion, and its cost in steps."""
        result = self.range_test()
        explanation: dict[str, Any] = {
            "rates": self.rates(),
            "range_test_steps": self.range_test_steps,
            "range_test": asdict(result) if result is not None else None,  # None: the run ended inside the test
        }
        if self.schedule is not None and result is not None:
            explanation.update(max_lr=result.suggested_lr, cycle_steps=self.schedule.total_steps)
        return explanation


@register_method("onecycle")
class OneCycleMethod(TrainingMethod):
    """1cycle at the rate an LR range test suggests, the test run on the run's first batches.

    Smith's LR range test (exponential sweep, stopped at divergence; suggestion: the rate
    of the lowest smoothed loss / 10) from the initial weights, then, from the initial
    weights again, the 1cycle policy (three linear phases, momentum cycled against the
    rate) over the rest of the run's steps. Needs the run's number of steps: not for a
    time budget.
    """

    label = "1cycle"
    paper = (
        "Smith 2017, Cyclical learning rates for training neural networks (LR range test); "
        "Smith 2018, A disciplined approach to neural network hyper-parameters (1cycle)"
    )
    cost = "one run, whose first steps (at most range_steps, 100) are the LR range test"
    options_type = OneCycleOptions

    def learner(self, model, spec, context):
        options: OneCycleOptions = self.options(spec)
        total = context.total_steps
        if total is None:
            raise AlraoUserError(
                "the method onecycle needs the run's number of steps, which a time budget leaves open",
                hint="give the run a budget in epochs or steps",
            )
        needed = options.range_steps + MIN_CYCLE_STEPS - 1
        if total < needed:
            raise AlraoUserError(
                f"the method onecycle needs at least {needed} steps (its range test takes up to "
                f"{options.range_steps}), the run has {total}",
                hint="train for more steps, or lower the option range_steps",
            )
        optimizer = torch.optim.SGD(
            model.parameters(), lr=options.start_lr, momentum=options.sgd_momentum, weight_decay=options.weight_decay
        )
        return OneCycleLearner(model, optimizer, context.task, options, total)
