"""Run control shared by the iterative solvers: progress bars, time limits, the
stopping verdict and the internal scaling of the data.

Every iterative function (``nmf``, ``ssnmf``, ``hnmf``, ``deep_nmf``, ``neural_nmf``)
records why it stopped in its result's ``stop_reason``:

- ``"tol"``: the stopping rule held (``converged=True``);
- ``"max_iter"`` (``"max_epochs"`` for Neural NMF): the iteration budget ran out;
- ``"max_time"``: the time budget ran out;
- ``"callback"``: the user's callback asked to stop (Neural NMF);
- ``"stationary"``: no step decreases the cost any more (Neural NMF, converged);
- ``"diverged"``: the stopping rule held at a relative error above 1, worse than the
  zero matrix (``nmf``, ``ssnmf``, ``hnmf``; ``converged=False``, with a warning).
"""

from __future__ import annotations

import contextlib
import contextvars
import time

import numpy as np

from ._sparse import abs_max

# The phase a nested call belongs to ("hnmf layer 2/3"), shown by its progress bar.
_phase = contextvars.ContextVar("nnmf_lib_phase", default=None)


@contextlib.contextmanager
def phase(label: str):
    """Label the progress bars and warnings of the calls made inside the block
    (nested labels are joined: "neural_nmf start, hnmf layer 1/2")."""
    outer = _phase.get()
    token = _phase.set(label if outer is None else f"{outer}, {label}")
    try:
        yield
    finally:
        _phase.reset(token)


class Progress:
    """A ``tqdm.auto`` bar with the current cost (a widget in JupyterLab, text in a
    terminal), or nothing at all when ``verbose`` is false."""

    def __init__(self, verbose: bool, total: int, name: str, unit: str = "it"):
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=labelled(name), unit=unit, leave=True)

    def update(self, cost: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"cost={cost:.4g}", refresh=False)
            self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Deadline:
    """The end of a time budget of ``max_time`` seconds (None: no budget)."""

    def __init__(self, max_time: float | None):
        self.max_time = max_time
        self.start = time.perf_counter()

    def expired(self) -> bool:
        return self.max_time is not None and self.remaining() <= 0

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a budget."""
        if self.max_time is None:
            return None
        return max(0.0, self.max_time - (time.perf_counter() - self.start))


def check_max_time(max_time) -> float | None:
    """None, or a finite number of seconds >= 0."""
    from ._validation import check_float

    return None if max_time is None else check_float(max_time, "max_time")


def check_bool(value, name: str) -> bool:
    """Raise ``TypeError`` unless ``value`` is a bool (numpy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def labelled(what: str) -> str:
    """``what``, prefixed by the phase of the run it belongs to, if any."""
    label = _phase.get()
    return what if label is None else f"{label}: {what}"


def unconverged_message(what: str, reason: str, budget, tol: float) -> str:
    """The ConvergenceWarning of a run that stopped on a budget before ``tol``."""
    what = labelled(what)
    unit = " s" if reason == "max_time" else ""
    remedy = f"increase {reason}" + (" or tol" if reason != "max_time" else "")
    return (
        f"{what} stopped at {reason}={budget:g}{unit} before the objective settled "
        f"(tol={tol:g}); {remedy}."
    )


# Data whose largest entry lies outside [2^-40, 2^40] are scaled by a power of two
# (exact in floating point) into [1, 4), and the factors scaled back. Inside this range
# nothing changes, so the results of ordinary data are the same as without scaling.
_SAFE = (2.0**-40, 2.0**40)


def scale_exponent(X) -> int:
    """An even exponent e with ``X / 2**e`` of moderate size (0 for moderate data).

    Even, so that each of two factors can take half of it exactly.
    """
    peak = abs_max(X)
    if peak == 0 or _SAFE[0] <= peak <= _SAFE[1]:
        return 0
    return 2 * (int(np.frexp(peak)[1]) // 2)


def scaled(X, e: int):
    """``X * 2**-e`` as a new array or sparse matrix (the input is not modified)."""
    return X if e == 0 else X * np.ldexp(1.0, -e)


def scaled_weight(lam: float, e: int) -> float:
    """The label weight for data divided by 2^e: ``lam / 4^e`` keeps the same problem
    (the label term does not scale with X). Its exponent is clipped to +-400, so that
    neither term overflows: beyond that one term outweighs the other by more than
    1e120 anyway."""
    return float(np.ldexp(lam, int(np.clip(-2 * e, -400, 400))))
