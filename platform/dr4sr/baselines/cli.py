"""`dr4sr baseline`: the data-centric reference recommenders of Table 3, on the backbones' splits and protocol.

    dr4sr baseline infae --dataset beauty --out runs/infae [--set infae.lambdas=[5,20]] [--smoke-test]
    dr4sr baseline melt --dataset beauty --out runs/melt [--set melt.lambda_item=0.3] [--smoke-test]
"""
from __future__ import annotations


def cmd_infae(args) -> int:
    from dr4sr.baselines.run import format_infae, run_infae
    from dr4sr.config import parse_overrides
    from dr4sr.paths import smoke_out

    out = smoke_out(args.out, args.smoke_test)
    metrics = run_infae(args.dataset, out, args.seed, parse_overrides(args.overrides), args.data_dir,
                        args.smoke_test)
    print(format_infae(metrics))
    print(f"wrote {out}/metrics.json and {out}/user_metrics.parquet")
    return 0


def cmd_melt(args) -> int:
    import functools

    from dr4sr.baselines.melt_run import run_melt
    from dr4sr.config import parse_overrides
    from dr4sr.paths import smoke_out
    from dr4sr.pipeline import backbone_weights
    from dr4sr.train.runner import format_metrics

    out = smoke_out(args.out, args.smoke_test)
    overrides = parse_overrides(args.overrides)
    weights = functools.partial(backbone_weights, out, args.dataset, data_dir=args.data_dir,
                                smoke_test=args.smoke_test, store_root=args.store, overrides=overrides)
    metrics = run_melt(args.dataset, out, args.seed, overrides, args.data_dir, args.smoke_test,
                       resume=args.resume, backbone_weights=weights)
    print(format_metrics(metrics))
    print(f"wrote {out}/metrics.json, {out}/user_metrics.parquet, {out}/model.pt and {out}/melt.pt")
    return 0


def _common(q, example: str) -> None:
    q.add_argument("--dataset", required=True, help="beauty|sports|toys|yelp, or a path (text format, CSV or Parquet)")
    q.add_argument("--data-dir", default=None, help="folder with <name>.txt (default: $DR4SR_DATA_DIR, else download)")
    q.add_argument("--out", required=True, help="output directory (metrics.json, user_metrics.parquet)")
    q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key, e.g. --set {example} (repeatable)")


def register(sub) -> None:
    p = sub.add_parser("baseline", help="run a data-centric baseline of Table 3 (infae, melt) on the same splits")
    which = p.add_subparsers(dest="baseline", required=True)
    q = which.add_parser("infae", help="∞-AE: kernel ridge regression with an infinite autoencoder's NTK",
                         description="∞-AE (Sachdeva et al., NeurIPS 2022) on the leave-one-out splits of the "
                                     "backbones: lambda chosen on validation, full-ranking test. Defaults: "
                                     "platform/dr4sr/configs/infae.yaml.")
    _common(q, "infae.lambdas=[5,20]")
    q.add_argument("--seed", type=int, default=None, help="seed of the user sample (infae.max_users); the fit is "
                                                          "deterministic")
    q.add_argument("--smoke-test", action="store_true",
                   help="a 1,000-user sample, output to OUT-smoke: checks the whole path in seconds")
    q.set_defaults(func=cmd_infae, resume_hint="rerun the same command (a run takes minutes and keeps no state)")
    q = which.add_parser("melt", help="MELT: SASRec with long-tailed user and item branches",
                         description="MELT (Kim et al., SIGIR 2023) on SASRec, trained by the project's loop on the "
                                     "leave-one-out splits of the backbones; full-ranking test. Defaults: "
                                     "platform/dr4sr/configs/melt.yaml over configs/sasrec.yaml.")
    _common(q, "melt.lambda_item=0.3")
    q.add_argument("--seed", type=int, default=None, help="training seed (train.seed; default 0)")
    q.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    q.add_argument("--store", default=None,
                   help="artifact store holding the SASRec backbone run MELT starts from (melt.init_from=backbone; "
                        "default: $DR4SR_ARTIFACTS, else ./artifacts)")
    q.add_argument("--smoke-test", action="store_true", help="2 epochs, output to OUT-smoke: not a result")
    q.set_defaults(func=cmd_melt, resume_hint="rerun the same command with --resume to continue from the last epoch")
