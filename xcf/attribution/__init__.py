"""The cross-class feature metric of Wei, Guo & Wang (ICML 2025), Section 3.1 and Algorithm 1.

For a classifier f(x) = W g(x) (Eq. 4) with features g(x) in R^n and W in R^{K x n}:

- attribution vector of sample x on class i (Eq. 5):  A_i(x) = g(x) * W[i]          (n,)
- class attribution vector (Algorithm 1):            A^y = mean_{x in D_y} A_y(x + delta)
- feature attribution correlation matrix (Eq. 6):    C[i, j] = cos(A^i, A^j)          (K, K)
- Class Attribution Similarity (Eq. 7):              CAS(C) = sum_{i != j} max(C[i, j], 0)
- instance-wise matrix (Section 5.3): C[i, j] = mean over x in class i of
  max over x' in class j of cos(A_i(x), A_j(x')); I-CAS is CAS of that matrix.

:func:`measure` runs one attack pass over a test set (batches mixed across classes) and
returns C, CAS and robust accuracy together.  Unlike the official code, which drops a
class's remainder beyond a multiple of 100 samples, every test sample is used.
"""

from ._matrix import (CORRELATION_TOL, attribution_vectors, bootstrap_cas, cas,
                      class_attribution_vectors, correlation_matrix, i_cas,
                      instance_correlation_matrix)
from ._measure import (Measurement, attack_and_embed, check_measure_inputs, measure,
                       summarise)

__all__ = ["CORRELATION_TOL", "attribution_vectors", "class_attribution_vectors",
           "correlation_matrix", "cas", "instance_correlation_matrix", "i_cas", "Measurement",
           "measure", "check_measure_inputs", "attack_and_embed", "summarise", "bootstrap_cas"]
