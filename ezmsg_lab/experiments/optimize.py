"""Search: Optuna's ask/tell over live settings, each trial measured in its own window."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import LabError
from .bench import Bench
from .plan import Conditions
from .stats import MetricSpec

_PRIMITIVE = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Dimension:
    """One field of the search space: a range (low, high[, log, step]) or choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            if all(isinstance(c, _PRIMITIVE) for c in self.choices):
                return trial.suggest_categorical(self.name, list(self.choices))
            labels = [repr(c) for c in self.choices]
            return self.choices[labels.index(trial.suggest_categorical(self.name, labels))]
        if self.integer:
            step = 1 if self.step is None else int(self.step)
            low, high = int(self.low or 0), int(self.high or 0)  # set for a range
            return trial.suggest_int(self.name, low, high, step=step, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def probes(self) -> list[Any]:
        """The values checked before the search starts (ends of a range, every choice)."""
        return list(self.choices) if self.choices else [self.low, self.high]


def parse_space(space: Mapping[str, Any]) -> list[Dimension]:
    """``{field: (low, high)}`` for a range (ints if both ends are ints), ``{field:
    [choices]}`` for choices, or ``{field: {"low":, "high":, "log": True, "step":}}``."""
    if not isinstance(space, Mapping) or not space:
        raise LabError(
            "optimize() needs a space such as {'cutoff_hz': (5.0, 100.0), 'window': "
            "['HANN', 'HAMMING']}: a tuple is a range, a list the choices."
        )
    dims = []
    for name, spec in space.items():
        if isinstance(spec, list):
            if not spec:
                raise LabError(f"space[{name!r}] has no choices")
            dims.append(Dimension(name, choices=tuple(spec)))
            continue
        if isinstance(spec, tuple) and len(spec) == 2:
            spec = {"low": spec[0], "high": spec[1]}
        if not isinstance(spec, Mapping) or not {"low", "high"} <= set(spec):
            raise LabError(
                f"space[{name!r}] = {spec!r}: give (low, high) for a range, a list of "
                "choices, or {'low': ..., 'high': ..., 'log': True}."
            )
        low, high = spec["low"], spec["high"]
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high))
        if not numbers or not low < high:
            raise LabError(f"space[{name!r}]: the range {low!r}..{high!r} must be low < high")
        integer = isinstance(low, int) and isinstance(high, int)
        dims.append(
            Dimension(
                name,
                low=low,
                high=high,
                log=bool(spec.get("log", False)),
                step=spec.get("step"),
                integer=integer,
            )
        )
    return dims


def objective_of(
    objective: str | Callable[[pd.DataFrame], float],
) -> Callable[[pd.DataFrame], float]:
    """A callable taking one trial's measured rows (a metric spec string becomes the
    median of that figure over the trial's repeats)."""
    if callable(objective):
        return objective
    if isinstance(objective, str):
        return MetricSpec.parse(objective).value
    raise LabError(
        f"objective={objective!r} must be a metric spec such as 'p95:DEMO/FILTER/INPUT_SIGNAL' "
        "or a function taking the trial's measured DataFrame and returning a number."
    )


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise LabError(
            "lab.optimize() uses Optuna, which is not installed: pip install "
            "'ezmsg-lab[optuna]' (or pip install optuna)."
        ) from None
    return optuna


@dataclass
class OptimizeResult:
    """What :meth:`Lab.optimize` found: ``trials`` (one row per trial: number, each
    field, value, state), ``best_params``, ``best_value``, ``frame`` (every measured
    row, with ``trial`` and ``repeat`` in front) and Optuna's ``study``."""

    address: str
    objective: str
    direction: str
    trials: pd.DataFrame = field(repr=False)
    frame: pd.DataFrame = field(repr=False)
    study: Any = field(repr=False)
    best_params: dict[str, Any]
    best_value: float

    def __repr__(self) -> str:
        return (
            f"<OptimizeResult {self.address} {self.direction} {self.objective}: best "
            f"{self.best_value:.4g} at {self.best_params} after {len(self.trials)} trials>"
        )

    def _repr_html_(self) -> str:
        head = (
            f"<b>Search on {html.escape(self.address)}</b>: {self.direction} "
            f"{html.escape(self.objective)}; best {self.best_value:.4g} at "
            f"<code>{html.escape(repr(self.best_params))}</code>"
        )
        return f"<div>{head}{self.trials.to_html(index=False)}</div>"


def run_optimize(
    bench: Bench,
    address: str,
    space: Mapping[str, Any],
    objective: str | Callable[[pd.DataFrame], float],
    cond: Conditions,
    *,
    n_trials: int,
    direction: str,
    repeats: int = 1,
    seed: int | None = None,
) -> OptimizeResult:
    """See :meth:`ExperimentsService.optimize`."""
    optuna = import_optuna()
    dims = parse_space(space)
    score = objective_of(objective)
    if direction not in ("minimize", "maximize"):
        raise LabError(f"direction={direction!r} must be 'minimize' or 'maximize'")
    for name, n in (("n_trials", n_trials), ("repeats", repeats)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise LabError(f"{name}={n!r} must be a whole number >= 1")
    probes = [d.probes() for d in dims]
    checks = [
        {d.name: vals[min(i, len(vals) - 1)] for d, vals in zip(dims, probes, strict=True)}
        for i in range(max(map(len, probes)))
    ]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler)
    frames = []
    with bench.experiment(address, checks, cond.relaunch, cond.trace):
        bar = bench.progress(n_trials, f"optimize {address}")
        try:
            for _ in range(n_trials):
                trial = study.ask()
                point = {d.name: d.suggest(trial) for d in dims}
                bar.set_postfix_str(", ".join(f"{k}={v!r}" for k, v in point.items()))
                try:
                    bench.apply(address, point, cond.relaunch)
                    rows = []
                    for r in range(repeats):
                        m = bench.measure(address, cond.settle, cond.measure, cond.topics)
                        m.insert(0, "repeat", r)
                        rows.append(m)
                    measured = pd.concat(rows, ignore_index=True)
                    value = float(score(measured))
                except BaseException:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise
                measured.insert(0, "trial", trial.number)
                frames.append(measured)
                if math.isfinite(value):
                    study.tell(trial, value)
                else:  # nothing measured for the objective: the trial does not count
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                bar.update(1)
        finally:
            bar.close()
    trials = _trials_frame(study, [d.name for d in dims])
    done = trials[trials["state"] == "COMPLETE"]
    if done.empty:
        raise LabError(
            f"No trial measured {objective!r}: check the topic name in lab.profile() and "
            "that tracing is on (trace=True) for a latency."
        )
    return OptimizeResult(
        address,
        str(objective)
        if isinstance(objective, str)
        else getattr(objective, "__name__", "objective"),
        direction,
        trials,
        pd.concat(frames, ignore_index=True),
        study,
        dict(study.best_trial.params),
        float(study.best_value),
    )


def _trials_frame(study: Any, names: list[str]) -> pd.DataFrame:
    rows = [
        {
            "trial": t.number,
            **{n: t.params.get(n) for n in names},
            "value": t.value if t.value is not None else math.nan,
            "state": t.state.name,
        }
        for t in study.trials
    ]
    return pd.DataFrame(rows, columns=["trial", *names, "value", "state"])
