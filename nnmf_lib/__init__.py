"""nnmf_lib: the companion library of the hierarchical NMF textbook.

Orientation (the paper's, everywhere in this library): the data ``X`` is N x M with
**one sample per column**, and ``X ≈ A S`` with topics as the columns of ``A`` (N x k)
and the representation ``S`` (k x M). This is the transpose of scikit-learn, whose
estimators take one sample per row.
"""

from ._validation import ConvergenceWarning, RankDeficiencyWarning
from .nnls import NNLSInfo, kkt_residual, nnls, nnls_vjp

__all__ = [
    "ConvergenceWarning",
    "NNLSInfo",
    "RankDeficiencyWarning",
    "kkt_residual",
    "nnls",
    "nnls_vjp",
]

__version__ = "0.1.0"
