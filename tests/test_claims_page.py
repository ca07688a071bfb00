"""xcf.companion.claims_page, the Claims page's tables."""
from xcf.companion import claims_page as page

HEADLINE_ROWS = [
    {"claim": "C1 fall", "statement": "s", "premise": "p", "verdict": "holds",
     "ours": "CAS best − last +3.45 (1/1 > 0); beyond both intervals in 1/1",
     "paper": "CAS 25.6 best (epoch 108) vs 9.0 last; RA 47.8% vs 42.5%"},
    {"claim": "C4", "statement": "s", "premise": "-", "verdict": "not run",
     "ours": "0 of 6 runs found", "paper": "CAS plummets (Fig. 7; values in it)"}]


def test_the_headline_keeps_one_short_line_per_claim_part():
    assert page.headline(HEADLINE_ROWS) == [
        {"claim": "C1 fall", "verdict": "holds", "ours": "CAS best − last +3.45 (1/1 > 0)",
         "the paper's": "CAS 25.6 best (epoch 108) vs 9.0 last"},
        {"claim": "C4", "verdict": "not run", "ours": "0 of 6 runs found",
         "the paper's": "CAS plummets (Fig. 7)"}]
