"""xcf.companion.planted (notebook 02): C against the planted sharing pairs, by hand."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from xcf.companion import planted  # noqa: E402


def _sharing():
    s = torch.zeros(4, 4, dtype=torch.bool)
    s[0, 1] = s[1, 0] = True  # classes 0 and 1 share a part
    return s


def test_c_on_the_sharing_pairs_against_the_others_and_their_rank():
    C = torch.eye(4)
    C[0, 1] = C[1, 0] = 0.8
    C[2, 3] = C[3, 2] = 0.5
    C[0, 2] = C[2, 0] = -0.25
    said = []
    out = planted.sharing_pairs(C, _sharing(), say=said.append)
    # other off-diagonal entries: 0.5 twice, -0.25 twice, 0 six times: mean 0.5 / 10
    assert out == {"mean_c_shared": 0.800000011920929, "mean_c_other": 0.05000000074505806,
                   "min_c_shared": 0.800000011920929, "max_c_other": 0.5,
                   "top_pairs_are_shared": True}
    assert said == ["mean C on sharing pairs 0.800 | on other pairs 0.050 | min sharing "
                    "0.800 vs max other 0.500",
                    "the 1 highest-ranked pairs are exactly the planted ones: True"]
    C[2, 3] = C[3, 2] = 0.9  # a pair that shares nothing now ranks first
    assert planted.sharing_pairs(C, _sharing(), say=said.append)["top_pairs_are_shared"] is False


def test_c_is_drawn_beside_the_sharing_graph():
    C = torch.eye(4)
    m = SimpleNamespace(C=C, cas=1.5, accuracy=0.25)  # what measure() returns, in part
    fig = planted.c_beside_sharing(m, _sharing(), "smoke")
    left, right = fig.axes[0], fig.axes[-1]
    assert "RA 25.0%, CAS 1.50 (smoke profile)" in left.get_title()
    assert left.images[0].get_clim() == (0, 1) and right.images
    plt.close(fig)
