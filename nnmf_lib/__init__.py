"""nnmf_lib: the companion library of the hierarchical NMF textbook.

Orientation (the paper's, everywhere in this library): the data ``X`` is N x M with
**one sample per column**, and ``X ≈ A S`` with topics as the columns of ``A`` (N x k)
and the representation ``S`` (k x M). This is the transpose of scikit-learn, whose
estimators take one sample per row.

Data ``X`` may be a ``scipy.sparse`` matrix or array (CSR, CSC, COO), as a
term-document matrix is: it stays sparse in every function (products, norms and
sampled entries only), so memory stays O(nnz(X) + (N + M) k). A ``numpy.ma`` masked
array ``X`` means the data mask ``W = ~X.mask`` (its masked entries are missing)
wherever a data mask is supported, and is refused where it is not.
"""

from ._validation import (
    AccuracyWarning,
    ConvergenceWarning,
    FitWarning,
    RankDeficiencyWarning,
)
from .datasets import BlockData, hierarchical_blocks, known_mask, nested_blocks
from .deep import DeepNMFResult, deep_nmf, pool, unpool
from .hierarchical import HNMFResult, hnmf, product
from .metrics import accuracy, predict_labels, relative_error
from .neural import NeuralNMFResult, forward, loss_and_grad, neural_nmf
from .nmf import NMFResult, initialize, nmf
from .nnls import NNLSInfo, kkt_residual, nnls, nnls_vjp
from .ssnmf import SSNMFResult, label_mask, one_hot, ssnmf

__all__ = [
    "AccuracyWarning",
    "BlockData",
    "ConvergenceWarning",
    "DeepNMFResult",
    "FitWarning",
    "HNMFResult",
    "NMFResult",
    "NNLSInfo",
    "NeuralNMFResult",
    "RankDeficiencyWarning",
    "SSNMFResult",
    "accuracy",
    "deep_nmf",
    "forward",
    "hierarchical_blocks",
    "hnmf",
    "initialize",
    "kkt_residual",
    "known_mask",
    "label_mask",
    "loss_and_grad",
    "nested_blocks",
    "neural_nmf",
    "nmf",
    "nnls",
    "nnls_vjp",
    "one_hot",
    "pool",
    "predict_labels",
    "product",
    "relative_error",
    "ssnmf",
    "unpool",
]

__version__ = "0.1.0"
