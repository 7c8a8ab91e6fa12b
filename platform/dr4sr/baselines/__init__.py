"""Reference recommenders outside the DR4SR pipeline (rows of the paper's Table 3 that are not a backbone),
evaluated with the same splits and full-ranking protocol as the backbones."""


def baseline_runner(name: str):
    """The run function of a named baseline: (dataset, out_dir, seed, overrides, data_dir, smoke_test, log) ->
    metrics.json's dict. Names: BASELINES."""
    if name == "infae":
        from dr4sr.baselines.run import run_infae

        return run_infae
    if name == "melt":
        from dr4sr.baselines.melt_run import run_melt

        return run_melt
    raise KeyError(name)


BASELINES = ("infae", "melt")  # the grid runs them once per dataset, at its first seed (TRAINED: at every seed)
# trained by the epoch loop from a seed: run at every seed, and their runner takes `resume` (continue from
# the run folder's checkpoint); ∞-AE's closed-form fit has no seed and takes minutes
TRAINED = ("melt",)
SINGLE_FIT = tuple(b for b in BASELINES if b not in TRAINED)  # deterministic: one fit, no seed
PRETRAINED = ("melt",)  # start from the SASRec backbone run: their runner takes `backbone_weights(seed)`
