"""DR4SR+: the model-aware dataset personalizer (g_phi), learned by bi-level optimization.

A room beside `train/`: it plugs into `dr4sr.train.loop.fit` through its `LoopHook` extension point.
"""
