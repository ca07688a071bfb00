"""Algorithm 1, Eq. 5-7 and the instance-wise metric against hand-computed values and a
literal, loop-by-loop transcription of Algorithm 1."""
import math

import pytest
import torch

from conftest import TinyNet
from xcf.attacks import PGD
from xcf.attribution import (attribution_vectors, cas, class_attribution_vectors,
                             correlation_matrix, i_cas, instance_correlation_matrix, measure)


def test_correlation_matrix_hand_computed():
    A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1, 0, r], [0, 1, r], [r, r, 1]])
    assert torch.allclose(correlation_matrix(A), expected, atol=1e-6)


def test_correlation_matrix_is_scale_invariant_per_row():
    A = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0]])
    scaled = A * torch.tensor([[3.0], [0.25]])
    assert torch.allclose(correlation_matrix(A), correlation_matrix(scaled), atol=1e-6)


def test_cas_sums_positive_off_diagonal_only():
    C = torch.tensor([[1.0, -0.5, 0.2], [0.3, 1.0, -0.1], [0.4, 0.0, 1.0]])
    assert cas(C) == pytest.approx(0.2 + 0.3 + 0.4)
    assert cas(torch.eye(4)) == 0.0
    # The matrix of the first test: four off-diagonal 1/sqrt(2) entries.
    assert cas(correlation_matrix(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))) == pytest.approx(2 * math.sqrt(2), rel=1e-6)


def test_class_attribution_vectors_hand_computed():
    g = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = torch.tensor([0, 0, 1])
    W = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    A = class_attribution_vectors(g, y, W)
    assert torch.allclose(A, torch.tensor([[2.0, 3.0], [10.0, -6.0]]))
    assert torch.allclose(attribution_vectors(g, W, y), torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, -6.0]]))


def _instance_matrix_by_loops(g, y, W, K):
    C = torch.zeros(K, K)
    for i in range(K):
        xs = [k for k in range(len(y)) if y[k] == i]
        for j in range(K):
            xps = [k for k in range(len(y)) if y[k] == j]
            best = []
            for a in xs:
                va = g[a] * W[i]
                best.append(max(float(torch.dot(va, g[b] * W[j]) / (va.norm() * (g[b] * W[j]).norm())) for b in xps))
            C[i, j] = sum(best) / len(best)
    return C


def test_instance_matrix_hand_case():
    # Two classes, W = identity: attribution = masked features.  Class 0 samples (1,0),(1,1);
    # class 1 samples (0,1),(1,1) -> A_0 = (1,0),(1,0); A_1 = (0,1),(0,1): orthogonal -> 0.
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    C = instance_correlation_matrix(g, y, torch.eye(2))
    assert torch.allclose(C, torch.eye(2), atol=1e-6)


def test_instance_matrix_matches_loops_and_is_asymmetric():
    torch.manual_seed(1)
    g, W = torch.rand(17, 5), torch.randn(3, 5)
    y = torch.tensor([0, 1, 2] * 5 + [0, 0])
    C = instance_correlation_matrix(g, y, W, chunk=4)
    assert torch.allclose(C, _instance_matrix_by_loops(g, y, W, 3), atol=1e-5)
    assert torch.allclose(C.diagonal(), torch.ones(3), atol=1e-6)
    assert i_cas(C) == pytest.approx(cas(C))


def test_empty_class_and_zero_vector_are_clear_errors():
    g, W = torch.rand(4, 3), torch.randn(3, 3)
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no test sample"):
        class_attribution_vectors(g, torch.tensor([0, 1, 1, 0]), W)
    with pytest.raises(ValueError, match="all zeros"):
        correlation_matrix(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="square"):
        cas(torch.ones(2, 3))


def _algorithm1_literal(model, x, y, attack, K):
    """Algorithm 1 of the paper, line by line: per class, per sample."""
    A = []
    W = model.head.weight.detach()
    for cls in range(K):
        acc = torch.zeros(W.shape[1])
        idx = (y == cls).nonzero().flatten()
        for k in idx:
            xk, yk = x[k:k + 1], y[k:k + 1]
            xa = attack(model, xk, yk) if attack else xk
            with torch.no_grad():
                acc += (model.features(xa)[0] * W[cls])
        A.append(acc / len(idx))
    return correlation_matrix(torch.stack(A))


@pytest.mark.parametrize("attack", [None, PGD(eps=0.1, steps=3, random_start=False),
                                    PGD(eps=0.5, steps=3, norm="l2", random_start=False)])
def test_measure_equals_literal_algorithm1(tiny_net, attack):
    torch.manual_seed(2)
    x, y = torch.rand(23, 1, 8, 8), torch.tensor([0, 1, 2] * 7 + [1, 2])
    m = measure(tiny_net, x, y, attack, batch_size=5)
    C_ref = _algorithm1_literal(tiny_net, x, y, attack, 3)
    assert torch.allclose(m.C, C_ref, atol=1e-5)
    assert m.cas == pytest.approx(cas(C_ref), abs=1e-4)
    assert m.counts.tolist() == [7, 8, 8]


def test_measure_accuracy_and_eps_zero_equals_clean(tiny_net):
    torch.manual_seed(3)
    x, y = torch.rand(40, 1, 8, 8), torch.arange(40) % 3
    with torch.no_grad():
        clean_acc = (tiny_net(x).argmax(1) == y).float().mean().item()
    assert measure(tiny_net, x, y, None).accuracy == pytest.approx(clean_acc)
    assert measure(tiny_net, x, y, PGD(eps=0.0, steps=5)).accuracy == pytest.approx(clean_acc)
    robust = measure(tiny_net, x, y, PGD(eps=0.3, steps=10)).accuracy
    assert robust <= clean_acc


def test_measure_instance_and_mode_restored(tiny_net):
    tiny_net.train()
    x, y = torch.rand(12, 1, 8, 8), torch.arange(12) % 3
    m = measure(tiny_net, x, y, None, instance=True)
    assert tiny_net.training and all(p.requires_grad for p in tiny_net.parameters())
    assert m.C_instance.shape == (3, 3) and m.i_cas == pytest.approx(cas(m.C_instance))


def test_measure_rejects_bad_input_before_attacking(tiny_net):
    calls = []

    def attack(model, x, y):
        calls.append(1)
        return x

    with pytest.raises(ValueError, match=r"\[2\]"):
        measure(tiny_net, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]), attack)
    assert not calls
    # A model without features/head is wrapped (xcf.models.as_feature_classifier), not
    # refused; one whose last layer is not a Linear is refused, naming that layer.
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    assert measure(flat, torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2]), None).C.shape == (3, 3)
    from xcf.models import LinearHeadError

    with pytest.raises(LinearHeadError, match="ReLU"):
        measure(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.ReLU()),
                torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2]), None)


# --------------------------------------------------------------------------- bootstrap interval of CAS

def _gaussian_classes(mu, n_per_class, sd, gen):
    K, n = mu.shape
    labels = torch.arange(K).repeat_interleave(n_per_class)
    feats = mu[labels] + sd * torch.randn(len(labels), n, generator=gen, dtype=torch.float64)
    return feats, labels


def test_bootstrap_cas_is_exact_when_each_class_is_one_repeated_point():
    from xcf.attribution import bootstrap_cas
    gen = torch.Generator().manual_seed(0)
    mu, W = torch.rand(4, 6, generator=gen, dtype=torch.float64), torch.randn(4, 6, generator=gen, dtype=torch.float64)
    feats, labels = _gaussian_classes(mu, 5, 0.0, gen)
    exact = cas(correlation_matrix(mu * W))  # A^k = mu_k * W_k, computed by hand
    boot = bootstrap_cas(feats, labels, W, n_boot=20, generator=gen)
    assert boot.shape == (20,)
    assert torch.allclose(boot.double(), torch.full((20,), exact, dtype=torch.float64), atol=1e-5)


def test_bootstrap_interval_covers_the_population_cas_and_narrows_with_more_samples():
    """Population class means are known, so the population CAS is known exactly; the 95%
    percentile interval should cover it in most of 40 independent test sets, and be about
    half as wide with four times the samples (1/sqrt(N))."""
    from xcf.attribution import bootstrap_cas
    gen = torch.Generator().manual_seed(1)
    K, n = 3, 8
    mu = torch.rand(K, n, generator=gen, dtype=torch.float64) + 0.5
    W = torch.rand(K, n, generator=gen, dtype=torch.float64) - 0.3
    truth = cas(correlation_matrix(mu * W))
    covered, widths = 0, {50: [], 200: []}
    for trial in range(40):
        for m in widths:
            feats, labels = _gaussian_classes(mu, m, 1.0, gen)
            lo, hi = torch.quantile(bootstrap_cas(feats, labels, W, n_boot=300, generator=gen).double(),
                                    torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
            widths[m].append(hi - lo)
            if m == 50:
                covered += lo <= truth <= hi
    assert covered >= 32, f"95% interval covered the true CAS {truth:.3f} in only {covered}/40 test sets"
    ratio = sum(widths[50]) / sum(widths[200])
    assert 1.6 < ratio < 2.5, ratio


def test_bootstrap_refuses_an_empty_class_and_zero_resamples():
    from xcf.attribution import bootstrap_cas
    feats, labels, W = torch.rand(6, 3), torch.tensor([0, 0, 1, 1, 0, 1]), torch.rand(3, 3)
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        bootstrap_cas(feats, labels, W)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_cas(feats, labels, W[:2], n_boot=0)
