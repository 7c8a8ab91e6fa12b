"""The benchmark grid as one Ray job: the same arguments and code as `dr4sr grid`.

    ray job submit --address http://<head>:8265 --working-dir . -- \
        python jobs/grid.py --out /mnt/dr4sr/grid [--backbones ...] [--datasets ...] [--variants ...] \
        [--seeds 0 1 2] [--space search_spaces/tpe_regen.yaml] [--smoke-test] [--gpus-per-run 0.25]

Backbones x datasets x variants x seeds, each run a Ray task; resubmitting the same command resumes
(finished run folders are kept). `--out` must be an absolute path every node sees, or s3://bucket/prefix: it holds
<dataset>/<backbone>/<variant>-seed<S> and table3.md/.tex/.csv, rewritten as runs finish.
"""
from __future__ import annotations

import sys

from tune import main  # noqa: E402  jobs/tune.py: the shared entrypoint (sys.path, cluster, --out check)

if __name__ == "__main__":
    sys.exit(main(command="grid"))
