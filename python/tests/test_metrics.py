"""cluster_metrics against a brute-force reference."""
import random

import pytest

import convvae
from convvae import ConvVAEError
import helpers


def test_perfect_clustering_under_relabelling():
    labels = [0, 0, 1, 1, 2, 2, 2]
    clusters = [5, 5, 3, 3, 9, 9, 9]
    m = convvae.cluster_metrics(labels, clusters)
    assert m == pytest.approx({"acc": 1.0, "purity": 1.0, "nmi": 1.0, "ari": 1.0})


def test_hand_computed_example():
    # clusters {0,1,2}->0 {3,4,5}->1: acc 4/6, purity 4/6
    m = convvae.cluster_metrics([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1])
    assert m["acc"] == pytest.approx(4 / 6) and m["purity"] == pytest.approx(4 / 6)


@pytest.mark.parametrize("seed", range(6))
def test_against_reference(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 40)
    labels = [rng.randrange(3) for _ in range(n)]
    clusters = [rng.randrange(rng.randint(1, 4)) for _ in range(n)]
    got = convvae.cluster_metrics(labels, clusters)
    want = helpers.ref_metrics(labels, clusters)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-9), k


@pytest.mark.parametrize("labels,clusters", [
    ([0, 1], [0]),          # lengths differ
    ([], []),               # nothing to compare
    ([0, 65536], [0, 1]),   # value out of range
    ([0, 1], [-1, 1]),
])
def test_errors(labels, clusters):
    with pytest.raises(ConvVAEError) as e:
        convvae.cluster_metrics(labels, clusters)
    assert e.value.name == "CVAE_E_INVALID_ARG"
