"""The budgets of `--smoke-test`, one table for every entry point (`train`, `run`, `compare`, `pretrain`,
`regenerate`, studies): the same budget gives the same artifact ids, so `dr4sr regenerate --smoke-test`
builds exactly what `dr4sr run --smoke-test --variant dr4sr` reuses. They sit under `--set`: an explicit
value wins (and the smoke label reports it)."""
from __future__ import annotations

SMOKE_EPOCHS = 2

# any target model (sections of the run config)
SMOKE_TRAIN = {"train": {"max_epochs": SMOKE_EPOCHS, "patience": SMOKE_EPOCHS},
               # DR4SR+'s 10 warm-up epochs would outlast the run: one plain epoch, then an upper step
               # after every lower step, so a smoke run exercises both levels (a disabled personalizer
               # changes no artifact id)
               "personalizer": {"warmup_epochs": 1, "t_lower": 1}}

# the regeneration pipeline (sections of the regenerator config); its SASRec init gets the target budget,
# so with init.data=original it is the train artifact of `dr4sr run --smoke-test --variant backbone`
SMOKE_REGEN = {"init": {"sasrec": {"train": SMOKE_TRAIN["train"]}}, "pretrain": {"max_epochs": SMOKE_EPOCHS}}
