"""Pattern mining (stage `mine`): frequent span-constrained patterns and (user, pattern) pairs.

- `mine_patterns` / `mine`: native (numpy, level-wise) or seq2pat engine, optionally on Ray Data.
- `pair_patterns`: the patterns each training sequence contains, ≤ max_pairs per user, seeded.
- `mine_into` / `load_mine_artifact`: write and read the `mine` artifact (dr4sr.stages runs it).
Ray is imported only when `workers` asks for it.
"""
from dr4sr.mining.engines import ENGINES, mine, mine_patterns
from dr4sr.mining.pairing import Pairs, pair_patterns
from dr4sr.mining.patterns import PatternSet
from dr4sr.mining.stage import MineConfig, load_mine_artifact, mine_into

__all__ = ["ENGINES", "MineConfig", "Pairs", "PatternSet", "load_mine_artifact", "mine", "mine_patterns",
           "mine_into", "pair_patterns"]
