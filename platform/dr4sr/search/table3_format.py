"""Table 3 in the paper's layout: rows per target model (backbone, DR4SR, Improv., DR4SR+, Improv., then
this platform's extra rows), columns dataset x {R@10, R@20, N@10, N@20}; a second table gives our value
minus the paper's, with the paper's value beside it. Markdown and LaTeX (booktabs)."""
from __future__ import annotations

from dr4sr.report import METRICS
from dr4sr.search.tables import BASELINE, SHORT, mark

MODEL_NAMES = {"gru4rec": "GRU4Rec", "sasrec": "SASRec", "fmlp": "FMLP-Rec", "gcegnn": "GCE-GNN",
               "cl4srec": "CL4SRec", "bert4rec": "BERT4Rec", "infae": "∞-AE", "melt": "MELT"}
VARIANT_NAMES = {"baseline": "data-centric baseline", "backbone": "backbone", "dr4sr": "DR4SR", "dr4sr+": "DR4SR+",
                 "pattern": "pattern + original",
                 "constant": "DR4SR data, constant weight", "dr4sr-no-diversity": "DR4SR w/o diversity",
                 "tuned": "tuned (study's best)"}
PAPER_ORDER = ("baseline", BASELINE, "dr4sr", "dr4sr+")  # the paper's rows first, ours after them
ONE_SEED = "†"
MISSING = "–"


def layout(rows: list[dict]) -> tuple[list[str], list[tuple[str, list[str]]], dict]:
    """(datasets, [(model, variants in display order)], {(dataset, model, variant): row}); the
    data-centric baselines (variant `baseline`) come first, as in the paper."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    models = list(dict.fromkeys(r["backbone"] for r in rows))
    by = {(r["dataset"], r["backbone"], r["variant"]): r for r in rows}
    groups = []
    for model in models:
        seen = list(dict.fromkeys(r["variant"] for r in rows if r["backbone"] == model))
        order = [v for v in PAPER_ORDER if v in seen] + [v for v in seen if v not in PAPER_ORDER]
        groups.append((model, order))
    groups.sort(key=lambda g: g[1] != ["baseline"])  # stable: baselines on top, models keep their order
    return datasets, groups, by


def row_name(model: str, variant: str) -> str:
    if variant in (BASELINE, "baseline"):
        return MODEL_NAMES.get(model, model) or variant
    return VARIANT_NAMES.get(variant, variant)


def one_seed(row: dict) -> bool:
    """A seeded method finished at one seed only (a deterministic baseline has no seed to repeat)."""
    return row["seeds"] == 1 and not row.get("single_fit")


def value_cell(row: dict | None, m: str) -> str:
    if row is None:
        return MISSING
    return f"{row[f'{m}_mean']:.4f}{mark(row, m)}" + (ONE_SEED if one_seed(row) else "")


def latex_value_cell(row: dict | None, m: str) -> str:
    if row is None:
        return MISSING
    flags = mark(row, m) + (r"\dagger" if one_seed(row) else "")
    return f"{row[f'{m}_mean']:.4f}" + (f"$^{{{flags}}}$" if flags else "")


def gain_cell(row: dict | None, m: str, percent: str = "%") -> str:
    if row is None or f"{m}_gain" not in row:
        return MISSING
    return f"{100 * row[f'{m}_gain']:+.1f}{percent}"


def diff_cell(row: dict | None, m: str) -> str:
    if row is None or row.get(f"{m}_paper") is None:
        return MISSING
    return f"{row[f'{m}_mean'] - row[f'{m}_paper']:+.4f} ({row[f'{m}_paper']:.4f})"


def _lines(rows: list[dict], cell, improv: bool) -> list[tuple[str, str, list[str]]]:
    """(model label, row label, cells) per printed row; `improv` adds the gain rows."""
    datasets, groups, by = layout(rows)
    out = []
    for model, variants in groups:
        for v in variants:
            cells = [cell(by.get((d, model, v)), m) for d in datasets for m in METRICS]
            if all(c == MISSING for c in cells):
                continue
            out.append((MODEL_NAMES.get(model, model), row_name(model, v), cells))
            if improv and v not in (BASELINE, "baseline"):
                out.append((MODEL_NAMES.get(model, model), "Improv.",
                            [gain_cell(by.get((d, model, v)), m) for d in datasets for m in METRICS]))
    return out


def footnote(rows: list[dict]) -> str:
    most = max([r["seeds"] for r in rows if not r.get("single_fit")] or [1])
    fits = sorted({MODEL_NAMES.get(r["backbone"], r["backbone"]) for r in rows if r.get("single_fit")})
    seeds = f"mean over {most} seeds unless marked {ONE_SEED}" if most > 1 else f"one seed per cell ({ONE_SEED})"
    return (f"Test metrics, full ranking over all items; {seeds}. "
            f"Improv.: gain over the same model's backbone row (seeds both rows finished). `*` p < 0.05, `**` "
            f"p < 0.01: paired t-test over users against the backbone, each user's metric averaged over those seeds. "
            f"{ONE_SEED}: one seed only. {MISSING}: not run (yet)."
            + (f" {', '.join(fits)}: deterministic (a closed-form fit, no seed), run once." if fits else ""))


def duels_markdown(duels: list[dict]) -> list[str]:
    """One line per (dataset, model): each question's gain on test N@20 and its paired p."""
    if not duels:
        return []
    cols = list(dict.fromkeys((d["variant"], d["against"]) for d in duels))
    by = {(d["dataset"], d["backbone"], d["variant"], d["against"]): d for d in duels}
    keys = list(dict.fromkeys((d["dataset"], d["backbone"]) for d in duels))
    head = "| dataset | model | " + " | ".join(f"{row_name('', v)} vs {row_name('', o)}" for v, o in cols) + " |"
    lines = ["", "### Head to head (test N@20: gain, paired t-test p, seeds)", "", head,
             "|---|---|" + "---:|" * len(cols)]
    for dataset, model in keys:
        cells = []
        for v, o in cols:
            d = by.get((dataset, model, v, o))
            cells.append(MISSING if d is None else f"{100 * d['gain']:+.1f}% (p {d['pvalue']:.2g}, {d['seeds']})")
        lines.append(f"| {dataset} | {MODEL_NAMES.get(model, model)} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(rows: list[dict], title: str | None = None, duels: list[dict] | None = None) -> str:
    if not rows:
        return (f"**{title}**\n\n" if title else "") + "No finished runs yet.\n"
    datasets = layout(rows)[0]
    head = "| model | row | " + " | ".join(f"{d} {SHORT[m]}" for d in datasets for m in METRICS) + " |"
    sep = "|---|---|" + "---:|" * (len(datasets) * len(METRICS))

    def table(lines):
        return [head, sep] + [f"| {a} | {b} | " + " | ".join(c) + " |" for a, b, c in lines]

    text = ([f"**{title}**", ""] if title else []) + ["### Ours", ""] + table(_lines(rows, value_cell, True))
    text += ["", footnote(rows)] + duels_markdown(duels or [])
    diffs = _lines([r for r in rows if any(r.get(f"{m}_paper") is not None for m in METRICS)], diff_cell, False)
    if diffs:
        text += ["", "### Ours minus the paper's (the paper's value in brackets)", ""] + table(diffs)
    return "\n".join(text) + "\n"


def _tex(s: str) -> str:
    return s.replace("%", r"\%").replace("∞", r"$\infty$").replace("†", r"$^\dagger$").replace("–", "--")


def to_latex(rows: list[dict], title: str | None = None) -> str:
    """A booktabs `table*` (needs \\usepackage{booktabs}); `\\input` it or compile it inside a document."""
    caption = _tex(title + ". " if title else "") + "Overall performance (ours). " + _tex(footnote(rows)).replace(
        "`", "")
    if not rows:
        return f"% {caption}\n% no finished runs yet\n"
    datasets = layout(rows)[0]
    n = len(datasets) * len(METRICS)
    lines = [r"\begin{table*}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
             r"\begin{tabular}{ll" + "r" * n + "}", r"\toprule",
             " & & " + " & ".join(rf"\multicolumn{{{len(METRICS)}}}{{c}}{{{d.capitalize()}}}" for d in datasets)
             + r" \\",
             " ".join(rf"\cmidrule(lr){{{3 + i * len(METRICS)}-{2 + (i + 1) * len(METRICS)}}}"
                      for i in range(len(datasets))),
             "Model & Row & " + " & ".join(SHORT[m] for _ in datasets for m in METRICS) + r" \\", r"\midrule"]
    last = None
    for model, name, cells in _lines(rows, latex_value_cell, True):
        if last is not None and model != last:
            lines.append(r"\midrule")
        lines.append(f"{_tex(model) if model != last else ''} & {_tex(name)} & "
                     + " & ".join(c if "$" in c else _tex(c) for c in cells) + r" \\")
        last = model
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(lines) + "\n"
