"""The paper's Table 3 numbers (test, full ranking), for side-by-side reporting."""
from __future__ import annotations

# backbone rows: (recall@10, recall@20, ndcg@10, ndcg@20)
BACKBONE = {
    "beauty": {"gru4rec": (0.0204, 0.0382, 0.0107, 0.0150), "sasrec": (0.0553, 0.0847, 0.0291, 0.0368),
               "fmlp": (0.0602, 0.0934, 0.0311, 0.0394), "gcegnn": (0.0570, 0.0859, 0.0311, 0.0384),
               "cl4srec": (0.0653, 0.0947, 0.0370, 0.0441)},
    "sports": {"gru4rec": (0.0160, 0.0279, 0.0085, 0.0115), "sasrec": (0.0297, 0.0449, 0.0156, 0.0194),
               "fmlp": (0.0323, 0.0524, 0.0166, 0.0217), "gcegnn": (0.0311, 0.0476, 0.0167, 0.0211),
               "cl4srec": (0.0381, 0.0559, 0.0215, 0.0259)},
    "toys": {"gru4rec": (0.0212, 0.0357, 0.0099, 0.0136), "sasrec": (0.0682, 0.0951, 0.0381, 0.0448),
             "fmlp": (0.0676, 0.0982, 0.0377, 0.0447), "gcegnn": (0.0697, 0.0958, 0.0403, 0.0469),
             "cl4srec": (0.0781, 0.1075, 0.0456, 0.0530)},
    "yelp": {"gru4rec": (0.0215, 0.0364, 0.0105, 0.0143), "sasrec": (0.0289, 0.0488, 0.0143, 0.0193),
             "fmlp": (0.0297, 0.0495, 0.0143, 0.0197), "gcegnn": (0.0242, 0.0430, 0.0118, 0.0166),
             "cl4srec": (0.0322, 0.0535, 0.0159, 0.0212)},
}

# NDCG@20 of each target model with DR4SR and with DR4SR+
DR4SR_N20 = {
    "beauty": {"gru4rec": (0.0177, 0.0194), "sasrec": (0.0395, 0.0412), "fmlp": (0.0421, 0.0449),
               "gcegnn": (0.0406, 0.0414), "cl4srec": (0.0495, 0.0517)},
    "sports": {"gru4rec": (0.0135, 0.0151), "sasrec": (0.0220, 0.0235), "fmlp": (0.0230, 0.0253),
               "gcegnn": (0.0230, 0.0238), "cl4srec": (0.0274, 0.0299)},
    "toys": {"gru4rec": (0.0165, 0.0179), "sasrec": (0.0504, 0.0527), "fmlp": (0.0486, 0.0524),
             "gcegnn": (0.0498, 0.0521), "cl4srec": (0.0551, 0.0567)},
    "yelp": {"gru4rec": (0.0156, 0.0164), "sasrec": (0.0202, 0.0211), "fmlp": (0.0210, 0.0231),
             "gcegnn": (0.0175, 0.0184), "cl4srec": (0.0229, 0.0241)},
}


def paper_ndcg20(dataset: str, backbone: str, variant: str) -> float | None:
    """The paper's test NDCG@20 for a Table 3 cell, or None (other variants, datasets or samples)."""
    if variant == "backbone":
        row = BACKBONE.get(dataset, {}).get(backbone)
        return row[3] if row else None
    col = {"dr4sr": 0, "dr4sr+": 1}.get(variant)
    row = DR4SR_N20.get(dataset, {}).get(backbone)
    return row[col] if row and col is not None else None
