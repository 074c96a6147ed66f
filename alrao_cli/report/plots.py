"""The PNG figures of a study: learning curves, Alrao's switch posterior, the two rankings.

Plots use matplotlib's object API (a ``Figure`` rendered by the Agg canvas) rather than
pyplot: no display is needed, no global backend is switched under a caller that uses
pyplot itself, and no figure is left registered to close. matplotlib is imported only
when a figure is drawn, so printing a table never waits for it.

A study's plots are a list of :class:`Plot`: a file name and a function that draws the
figure. Each is drawn and saved on its own, so that the end of a study can draw what it
can and warn about the rest, and tests can check what a figure holds, not only that a
file was written. Baselines are drawn as :mod:`alrao_cli.results.ranking` describes them,
so a newly registered baseline gets its curves without a change here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alrao_cli.errors import AlraoUserError
from alrao_cli.report.format import MISSING, format_lr, format_rank
from alrao_cli.results.ranking import (
    ALRAO,
    CompareSummary,
    compare_architectures,
    screened_methods,
    method_order,
)
from alrao_cli.util.files import distinct_safe_names
from alrao_cli.results.records import RunResult, StudyResult
from alrao_cli.util.files import write_atomic_with

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CLIP_FACTOR = 3.0  # a loss axis ends at most this far above the worst loss of the runs worth reading
LOG_RANGE = 10.0  # a loss axis is logarithmic only when its losses span more than this ratio
_SINGLE_RUN_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink")
_GRID_LINESTYLES = ("-", ":", "-.")


@dataclass(frozen=True, slots=True)
class Plot:
    """One PNG a study can draw: the file name it is saved as, and how to draw its figure.

    Nothing is drawn until :func:`write_plot` calls ``draw``: deciding which plots a study
    has needs no matplotlib, and a plot that cannot be drawn fails alone.
    """

    name: str  # e.g. "curves-mlp.png"
    draw: Callable[[], Figure]


# -- which plots a study has --------------------------------------------------------------
def study_plots(study: StudyResult) -> list[Plot]:
    """Every plot the study can draw: learning curves, posteriors, adaptive rates, then (a compare) the ranking."""
    plots = curve_plots(study) + posterior_plots(study) + rate_plots(study)
    if study.kind == "compare":
        plots += ranking_plots(compare_architectures(study.runs, subject=screened_methods(study.config)[0]))
    return plots


def curve_plots(study: StudyResult) -> list[Plot]:
    """``curves-ARCH.png`` per architecture with a loss to draw: see :func:`learning_curve_figures`."""
    names = distinct_safe_names(list(_first_seed_runs(study.runs)))
    return [Plot(f"curves-{names[arch]}.png", draw) for arch, draw in _curve_drawers(study).items()]


def posterior_plots(study: StudyResult) -> list[Plot]:
    """``posterior-ARCH.png`` per architecture with an Alrao posterior: see :func:`posterior_figures`."""
    names = distinct_safe_names(list(_first_seed_runs(study.runs)))
    return [Plot(f"posterior-{names[arch]}.png", draw) for arch, draw in _posterior_drawers(study).items()]


def rate_plots(study: StudyResult) -> list[Plot]:
    """``rates-ARCH.png`` per architecture with a method that recorded its rate: see :func:`rate_figure`."""
    names = distinct_safe_names(list(_first_seed_runs(study.runs)))
    return [Plot(f"rates-{names[arch]}.png", draw) for arch, draw in _rate_drawers(study).items()]


def ranking_plots(summary: CompareSummary) -> list[Plot]:
    """``ranking.png``: see :func:`rank_comparison_figure`; nothing when nothing is ranked."""
    return [Plot("ranking.png", partial(_rank_figure, summary))] if summary.ranking else []


# -- writing ------------------------------------------------------------------------------
def save_figure(figure: Figure, path: Path) -> None:
    """Render ``figure`` as a PNG at ``path`` (its folder created), never leaving half a file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_with(path, FigureCanvasAgg(figure).print_png)


def write_plot(plot: Plot, out_dir: Path) -> Path:
    """Draw ``plot`` and save it into ``out_dir``; what drawing or saving raises is raised as is."""
    path = out_dir / plot.name
    save_figure(plot.draw(), path)
    return path


def write_plots(plots: Iterable[Plot], out_dir: Path) -> list[Path]:
    """Draw each plot into ``out_dir``; a folder or disk that cannot take one is an
    :class:`AlraoUserError` naming the file (the caller asked for plots and nothing else)."""
    paths = []
    for plot in plots:
        figure = plot.draw()
        path = out_dir / plot.name
        try:
            save_figure(figure, path)
        except OSError as error:
            raise AlraoUserError(
                f"cannot write the plot {path}: {error.strerror or error}",
                hint="make the folder writable, or pass --no-plots and draw them elsewhere "
                "with `alrao report RUN_DIR --plots-dir DIR`",
            ) from None
        paths.append(path)
    return paths


def plot_learning_curves(study: StudyResult, out_dir: Path) -> list[Path]:
    """``curves-ARCH.png`` per architecture, written into ``out_dir``."""
    return write_plots(curve_plots(study), out_dir)


def plot_posterior(study: StudyResult, out_dir: Path) -> list[Path]:
    """``posterior-ARCH.png`` per architecture, written into ``out_dir``."""
    return write_plots(posterior_plots(study), out_dir)


def plot_rank_comparison(summary: CompareSummary, out_dir: Path) -> list[Path]:
    """``ranking.png`` written into ``out_dir``; nothing when nothing is ranked."""
    return write_plots(ranking_plots(summary), out_dir)


# -- learning curves ----------------------------------------------------------------------
def learning_curve_figures(study: StudyResult) -> dict[str, Figure]:
    """Per architecture, training and validation loss per epoch: Alrao against each
    baseline run (as in the Alrao paper's Figure 2). The first seed only, for legibility.

    Every run is in the legend, even one with nothing to draw (a rate that diverged in its
    first epoch reads ``sgd lr=1.0e+01 (diverged)``). A loss axis ends a few times above
    the worst loss of the runs worth reading (Alrao and each method's best run), so that a
    rate whose loss blew up to 1e18 does not flatten every other curve; the curves it cuts
    are marked ``(off scale)``. A rate keeps its colour in every figure of the study.
    """
    return {arch: draw() for arch, draw in _curve_drawers(study).items()}


def _curve_drawers(study: StudyResult) -> dict[str, Callable[[], Figure]]:
    """Per architecture with a finite loss to draw, the function drawing its curves."""
    styles = _curve_styles(study.runs)
    drawers = {}
    for arch, runs in _first_seed_runs(study.runs).items():
        runs = sorted(runs, key=_plot_order)
        if any(math.isfinite(value) for run in runs for value in (*_losses(run, "train"), *_losses(run, "val"))):
            drawers[arch] = partial(_curves_figure, arch, runs, styles)
    return drawers


def _curves_figure(arch: str, runs: list[RunResult], styles: dict[tuple[str, float | None], dict]) -> Figure:
    figure = _figure(width=11, height=4.2)
    train_axes, val_axes = figure.subplots(1, 2, sharex=True)
    panels = [(train_axes, "training", "train"), (val_axes, "validation", "val")]
    reference = _reference_runs(runs)
    caps = {
        which: _clip_limit([_losses(run, which) for run in reference], [_losses(run, which) for run in runs])
        for _, _, which in panels
    }
    off_scale = {
        run.key for run in runs for which, cap in caps.items()
        if cap is not None and any(value > cap for value in _losses(run, which) if math.isfinite(value))
    }
    for axes, what, which in panels:
        for run in runs:
            label = _curve_label(run, run.key in off_scale)
            losses = _losses(run, which)
            style = styles[run.method, run.lr]
            if run.status != "ok" or len(run.history) == 1:  # marked points: one epoch is one point, no line
                style = {**style, "marker": "o", "markersize": 3}
            if any(math.isfinite(value) for value in losses):
                axes.plot([record.epoch for record in run.history], losses, label=label, **style)
            else:  # nothing to draw: the run still belongs in the legend
                axes.plot([], [], label=label, **style)
        _shape_loss_axis(axes, f"{what} loss", [_losses(run, which) for run in runs], caps[which])
    epochs = {record.epoch for run in runs for record in run.history}
    if len(epochs) == 1:  # one epoch: matplotlib would spread fractional ticks around it
        (epoch,) = epochs
        train_axes.set_xlim(epoch - 0.5, epoch + 0.5)
        train_axes.set_xticks([epoch])
    val_axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle(f"{arch}: loss per epoch (seed {runs[0].seed})")
    return figure


def _losses(run: RunResult, which: str) -> list[float]:
    """A run's training or validation loss per epoch; non-finite ones as NaN (a gap in the line)."""
    values = [record.train_loss if which == "train" else record.val_loss for record in run.history]
    return [value if math.isfinite(value) else math.nan for value in values]


def _reference_runs(runs: list[RunResult]) -> list[RunResult]:
    """The runs worth reading: for each method, its healthy run with the lowest validation loss."""
    best: dict[str, RunResult] = {}
    for run in runs:
        if run.status != "ok" or run.best_val_loss is None:
            continue
        if run.method not in best or run.best_val_loss < best[run.method].best_val_loss:
            best[run.method] = run
    return list(best.values())


def _clip_limit(reference: list[list[float]], every: list[list[float]]) -> float | None:
    """Where a loss axis should end, when some curve runs far above the reference runs."""
    worst = max((value for losses in reference for value in losses if math.isfinite(value)), default=None)
    if worst is None or worst <= 0:
        return None
    cap = CLIP_FACTOR * worst
    return cap if any(value > cap for losses in every for value in losses if math.isfinite(value)) else None


def _shape_loss_axis(axes: Axes, ylabel: str, curves: list[list[float]], cap: float | None) -> None:
    """Whole epochs on x; y logarithmic only over more than a decade, and cut at ``cap``."""
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    shown = [value for losses in curves for value in losses if math.isfinite(value) and (cap is None or value <= cap)]
    if not shown:
        return
    low, high = min(shown), max(shown)
    log = low > 0 and high / low > LOG_RANGE
    if log:
        axes.set_yscale("log")
    if cap is not None:
        if log:
            axes.set_ylim(low / 1.1, high * 1.1)
        else:
            margin = 0.05 * ((high - low) or abs(high) or 1.0)
            axes.set_ylim(low - margin, high + margin)


def _curve_label(run: RunResult, off_scale: bool) -> str:
    label = run.method if run.lr is None else f"{run.method} lr={format_lr(run.lr)}"
    if run.status != "ok":
        label += f" ({run.status})"
    return label + " (off scale)" if off_scale else label


def _curve_styles(runs: Iterable[RunResult]) -> dict[tuple[str, float | None], dict[str, Any]]:
    """A line style per method and rate, from every run of the study, so that a rate keeps
    its colour from one architecture's figure to the next: Alrao thick black, the rates of
    a grid along viridis (one line style per grid method), methods run once dashed."""
    rates: dict[str, set[float | None]] = {}
    tuned: dict[str, bool] = {}
    for run in runs:
        rates.setdefault(run.method, set()).add(run.lr)
        tuned[run.method] = run.tuned_over_grid
    styles: dict[tuple[str, float | None], dict[str, Any]] = {}
    grids = singles = 0
    for method in sorted(rates, key=lambda name: method_order(name, tuned[name])):
        ordered = sorted(rates[method], key=lambda lr: math.inf if lr is None else lr)
        if method == ALRAO:
            styles.update({(method, lr): {"color": "black", "linewidth": 2.5} for lr in ordered})
        elif tuned[method]:
            linestyle = _GRID_LINESTYLES[grids % len(_GRID_LINESTYLES)]
            grids += 1
            for lr, color in zip(ordered, _palette(len(ordered))):
                styles[method, lr] = {"color": color, "linewidth": 1.2, "linestyle": linestyle}
        else:
            color = _SINGLE_RUN_COLORS[singles % len(_SINGLE_RUN_COLORS)]
            singles += 1
            styles.update({(method, lr): {"color": color, "linewidth": 1.5, "linestyle": "--"} for lr in ordered})
    return styles


def _plot_order(run: RunResult) -> tuple:
    return (*method_order(run.method, run.tuned_over_grid), run.lr if run.lr is not None else 0.0)


# -- switch posterior ---------------------------------------------------------------------
def posterior_figures(study: StudyResult) -> dict[str, Figure]:
    """Per architecture, Alrao's switch posterior over its output copies per epoch, stacked
    (as in the paper's Figure 4): which rates the model trusts as training goes on."""
    return {arch: draw() for arch, draw in _posterior_drawers(study).items()}


def _posterior_drawers(study: StudyResult) -> dict[str, Callable[[], Figure]]:
    """Per architecture whose Alrao run recorded a posterior, the function drawing it."""
    drawers = {}
    for arch, runs in _first_seed_runs(study.runs).items():
        run = next((run for run in runs if run.method == ALRAO), None)
        if run is not None and any(record.posterior for record in run.history):
            drawers[arch] = partial(_posterior_figure, arch, run)
    return drawers


def _posterior_figure(arch: str, run: RunResult) -> Figure:
    from matplotlib.ticker import MaxNLocator

    records = [record for record in run.history if record.posterior]
    copies = len(records[0].posterior)
    records = [record for record in records if len(record.posterior) == copies]
    rates = run.copy_lrs if run.copy_lrs is not None and len(run.copy_lrs) == copies else None
    labels = [f"lr {format_lr(lr)}" for lr in rates] if rates else [f"copy {i}" for i in range(copies)]
    weights = [
        [value if math.isfinite(value) else 0.0 for value in (record.posterior[i] for record in records)]
        for i in range(copies)
    ]
    figure = _figure(width=8, height=4.2)
    axes = figure.subplots()
    axes.stackplot([record.epoch for record in records], weights, labels=labels, colors=_palette(copies))
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("switch posterior")
    axes.set_ylim(0, 1)
    handles, legend_labels = axes.get_legend_handles_labels()  # listed top-down, as stacked
    axes.legend(handles[::-1], legend_labels[::-1], fontsize="small", loc="upper left",
                bbox_to_anchor=(1.02, 1.0), title="copy")
    axes.set_title(f"{arch}: which output copy the switch trusts (seed {run.seed})")
    return figure


def _rate_drawers(study: StudyResult) -> dict[str, Callable[[], Figure]]:
    """Per architecture, the function drawing the rates its adaptive methods settled on."""
    drawers = {}
    for arch, runs in _first_seed_runs(study.runs).items():
        with_rates = [run for run in runs if _rate_moved(run)]
        if with_rates:
            drawers[arch] = partial(rate_figure, arch, with_rates)
    return drawers


def _rate_moved(run: RunResult) -> bool:
    """Whether the run's method chose its rate: it recorded one other than the rate it was given."""
    rates = [record.rates.get("lr") for record in run.history if record.rates]
    return any(rate is not None and (run.lr is None or not math.isclose(rate, run.lr, rel_tol=1e-9)) for rate in rates)


def rate_figure(arch: str, runs: list[RunResult]) -> Figure:
    """The rate each adaptive method used, epoch by epoch (its ``lr``; the range of its
    layers' rates, shaded, where they differ; a thin line through the steps where the method
    saved its rate's trajectory), on a log scale: beside the posterior, it shows where each
    method's rate settled."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(width=8, height=4.2)
    axes = figure.subplots()
    for run, color in zip(runs, _palette(len(runs))):
        records = [record for record in run.history if record.rates and math.isfinite(record.rates.get("lr", math.nan))]
        if not records:
            continue
        epochs = [record.epoch for record in records]
        axes.plot(epochs, [record.rates["lr"] for record in records], marker="o", color=color, label=_curve_label(run, False))
        trajectory = (run.explanation or {}).get("lr_trajectory")
        if trajectory and records[0].step:  # a rate set step by step (MLR-SNet): drawn between the epochs' points
            per_epoch = records[0].step / records[0].epoch
            axes.plot([step / per_epoch for step, _ in trajectory], [rate for _, rate in trajectory],
                      color=color, linewidth=0.8, alpha=0.6)
        if all("lr_min" in record.rates and "lr_max" in record.rates for record in records):
            axes.fill_between(epochs, [r.rates["lr_min"] for r in records], [r.rates["lr_max"] for r in records],
                              color=color, alpha=0.15, linewidth=0)
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("learning rate")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes.set_title(f"{arch}: the rate each adaptive method used (seed {runs[0].seed})")
    return figure


# -- the two rankings ---------------------------------------------------------------------
def rank_comparison_figure(summary: CompareSummary) -> Figure | None:
    """Alrao's rank of each architecture against its best-tuned SGD rank: on the diagonal,
    screening with Alrao would have picked what tuning each one would have. Tied ranks
    read ``1=`` on the axes; architectures on the same point are labelled one above the other."""
    return _rank_figure(summary) if summary.ranking else None


def _rank_figure(summary: CompareSummary) -> Figure:
    figure = _figure(width=6, height=6)
    axes = figure.subplots()
    size = len(summary.ranking)
    axes.plot([0.5, size + 0.5], [0.5, size + 0.5], color="0.7", linestyle="--", linewidth=1)
    axes.scatter([pair.alrao_rank for pair in summary.ranking], [pair.sgd_rank for pair in summary.ranking])
    labelled: dict[tuple[int, int], int] = {}
    for pair in summary.ranking:
        point = (pair.alrao_rank, pair.sgd_rank)
        below = labelled.get(point, 0)
        labelled[point] = below + 1
        axes.annotate(pair.arch, point, textcoords="offset points", xytext=(5, 5 + 11 * below), fontsize="small")
    ticks = list(range(1, size + 1))
    alrao, sgd = [pair.alrao_rank for pair in summary.ranking], [pair.sgd_rank for pair in summary.ranking]
    axes.set_xticks(ticks, [format_rank(tick, alrao) for tick in ticks])
    axes.set_yticks(ticks, [format_rank(tick, sgd) for tick in ticks])
    axes.set_xlim(0.5, size + 0.5)
    axes.set_ylim(0.5, size + 0.5)
    axes.set_xlabel("rank by Alrao (1 = lowest validation loss)")
    axes.set_ylabel("rank by best-tuned SGD")
    tau = MISSING if summary.kendall_tau is None else f"{summary.kendall_tau:.2f}"
    rho = MISSING if summary.spearman_rho is None else f"{summary.spearman_rho:.2f}"
    axes.set_title(f"Kendall tau {tau}, Spearman rho {rho}")
    return figure


# -- shared -------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _first_seed_runs(runs: Iterable[RunResult]) -> dict[str, list[RunResult]]:
    """Per architecture (in order of appearance), its runs of the lowest seed."""
    by_arch: dict[str, list[RunResult]] = {}
    for run in runs:
        by_arch.setdefault(run.arch, []).append(run)
    lowest = {arch: min(run.seed for run in arch_runs) for arch, arch_runs in by_arch.items()}
    return {
        arch: [run for run in arch_runs if run.seed == lowest[arch]] for arch, arch_runs in by_arch.items()
    }


def _palette(count: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    colormap = colormaps["viridis"]
    return [colormap(i / max(count - 1, 1)) for i in range(count)]
