"""DR4SR+: the model-aware dataset personalizer (g_phi), learned by bi-level optimization.

A room beside `train/`: it plugs into `dr4sr.train.loop.fit` through its `LoopHook` extension point,
as the run extension of the run config's `personalizer` section (dr4sr.train.extensions), registered
when this package is imported. Its config dataclass lives in dr4sr.train.config, below this package.
"""
from dr4sr.personalizer.setup import register

register()
