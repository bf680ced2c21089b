"""``tsmlip claims``: the claims and headline tables from ``tables/models.csv``."""
from __future__ import annotations

import html
import sys
from pathlib import Path

import pandas as pd

from ..cli import step_parser
from ..config import calculator_name
from ..records import AtomEnergies, CalculatorCost, RdfError
from .claim import claims_frame
from .classical import CLASSICAL_INTRO, CLASSICAL_TITLE, classical_claims, classical_headline, classical_human, \
    classical_markdown
from .foundation import foundation_claims
from .gates import budget_check_table
from .headline import HEADLINE_INTRO, foundation_headline, headline_human, headline_markdown, headline_table
from .render import budget_check_markdown, claims_markdown, human_table, verdict_rule_text, write_html
from .table import all_claims


def main(argv: list[str] | None = None) -> int:
    """``tsmlip claims``: models.csv (+ labels/atom_energies.json) -> claims.csv, claims.md (+ .html) and the
    headline table."""
    ap = step_parser("claims", main.__doc__)
    ap.add_argument("--models", required=True, help="tables/models.csv")
    ap.add_argument("--labels", default=None, help="labels/atom_energies.json (its vs_reference check)")
    ap.add_argument("--rdf-noise-floor", default=None,
                    help="rdf_noise/noise_floor.json: the RDF error between two teacher liquids of different seeds")
    ap.add_argument("--foundation-cost", default=None,
                    help="foundation/cost.json: the teacher calculator's own MD cost (docs/foundation.md)")
    ap.add_argument("--classical", default=None,
                    help="tables/classical.csv: the classical anchor (config classical:), rows against it")
    ap.add_argument("--out-csv", required=True)
    ap.add_argument("--out-md", required=True)
    ap.add_argument("--out-html", default=None)
    ap.add_argument("--out-budget-check", default=None,
                    help="tables/budget_check.csv: every budget check by kind x architecture (also in --out-md)")
    ap.add_argument("--out-headline-csv", default=None)
    ap.add_argument("--out-headline-md", default=None)
    ap.add_argument("--out-headline-html", default=None)
    args = ap.parse_args(argv)

    cfg = args.config_json["aggregate"]
    from ..provenance import check_file, check_made_from, check_sidecar, record, write_sidecars

    check_sidecar(args.models)  # a table changed after aggregate wrote it
    for p in (args.labels, args.rdf_noise_floor, args.foundation_cost):
        if p:
            check_file(p)
    floor = None
    if args.rdf_noise_floor:
        noise = RdfError.read(args.rdf_noise_floor)
        if noise.teacher_ids:  # the teacher's liquid again: made from the teacher model now in place
            check_made_from(args.rdf_noise_floor, "model",
                            Path(args.rdf_noise_floor).parent.parent / "models" / noise.teacher_ids[0] / "model.pt")
        floor = float(noise.error_vs_teacher) if noise.error_vs_teacher is not None else None
    models = pd.read_csv(args.models)
    labels = AtomEnergies.read(args.labels) if args.labels else None
    claims = all_claims(models, labels, cfg, floor)
    extra = foundation_claims(models, cfg, floor, calculator_name(args.config_json))
    classical = None
    if args.classical:
        check_sidecar(args.classical)
        classical = pd.read_csv(args.classical)
        extra += classical_claims(models, classical, cfg, floor)
    if extra:
        claims = pd.concat([claims, claims_frame(extra)], ignore_index=True)
    Path(args.out_csv).parent.mkdir(parents=True, exist_ok=True)
    claims.to_csv(args.out_csv, index=False)
    checks = budget_check_table(models, cfg)
    Path(args.out_md).write_text(claims_markdown(claims, cfg) + budget_check_markdown(checks))
    if args.out_budget_check:
        checks.to_csv(args.out_budget_check, index=False)
    if args.out_html:
        notes = "".join(f"<p>{html.escape(p.replace('**', '').replace('*', ''))}</p>" for p in verdict_rule_text(cfg))
        write_html(human_table(claims), args.out_html, "The paper's claims, tested on this run", notes)
    head = headline_table(models)
    if args.foundation_cost:
        fh = foundation_headline(models, CalculatorCost.read(args.foundation_cost))
        if len(fh):
            head = pd.concat([head, fh], ignore_index=True)
    versus = classical_headline(models, classical)
    name = str(classical["name"].iloc[0]) if classical is not None and len(classical) else "classical"
    if args.out_headline_csv:
        (pd.concat([head, versus], ignore_index=True) if len(versus) else head).to_csv(args.out_headline_csv,
                                                                                      index=False)
    if args.out_headline_md:
        text = headline_markdown(head)
        if len(versus):
            text += "\n\n" + classical_markdown(versus, name)
        Path(args.out_headline_md).write_text(text)
    if args.out_headline_html:
        notes = f"<p>{html.escape(HEADLINE_INTRO)}</p>"
        if len(versus):
            notes += (f"<h2>{html.escape(CLASSICAL_TITLE.format(name=name))}</h2><p>"
                      f"{html.escape(CLASSICAL_INTRO.format(name=name))}</p>"
                      + classical_human(versus, name).to_html(index=False))
        write_html(headline_human(head), args.out_headline_html, "Headline: the best student against the teacher and "
                   "its control", notes)
    rec = record("claims", args.config_json, {"models": args.models, "labels": args.labels,
                                              "noise_floor": args.rdf_noise_floor,
                                              "foundation_cost": args.foundation_cost,
                                              "classical": args.classical})
    write_sidecars([args.out_csv, args.out_md, args.out_html, args.out_budget_check, args.out_headline_csv, args.out_headline_md,
                    args.out_headline_html], rec)
    counts = claims["verdict"].value_counts().to_dict()
    print(f"[claims] {len(claims)} rows: {counts} -> {args.out_csv}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
