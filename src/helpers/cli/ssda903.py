"""`care-trends validate-903` and `care-trends synth-903`."""

from __future__ import annotations

from helpers.core import timeline, vocab
from helpers.core.errors import CareTrendsError
from helpers.ssda903 import derive, extract, synth


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "validate-903", help="check a council's SSDA903 header and episodes files",
        description="Read SSDA903 header and episodes files (paths, comma lists or quoted patterns "
                    "such as 'header_*.csv' for several yearly files), or a DfE XML export alone, "
                    "print the validation report (counts only), and exit non-zero if a problem "
                    "makes them unusable.")
    p.add_argument("header", metavar="HEADER", help="header file(s), or the DfE XML export")
    p.add_argument("episodes", metavar="EPISODES", nargs="?", default=None,
                   help="episodes file(s); leave out for a DfE XML export")
    p.add_argument("--as-of", default=None, help="dates after this count as future (default today)")
    p.add_argument("--strict", action="store_true", help="treat every warning as fatal")
    p.add_argument("--summary", action="store_true",
                   help="also print the annual DfE-style counts (small counts suppressed)")
    p.set_defaults(handler=_validate)

    s = subparsers.add_parser(
        "synth-903", help="write SYNTHETIC SSDA903 files calibrated to an LA's published counts",
        description="Generate SYNTHETIC header and episodes files, child by child, whose annual "
                    "starts and ceased equal the LA's published counts (2010-2025).")
    s.add_argument("--la", required=True, help="LA name or old three-digit code")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--seed", type=int, default=vocab.DEFAULT_SEED)
    s.add_argument("--effect-date", default=None, help="inject a change in starts from this date")
    s.add_argument("--effect-level", type=float, default=1.0,
                   help="rate ratio applied to starts from the date (e.g. 0.8)")
    s.add_argument("--effect-slope", type=float, default=1.0,
                   help="further rate ratio per month after the date (e.g. 0.99)")
    s.set_defaults(handler=_synth)


def _validate(args) -> int:
    result = extract.load_903(args.header, args.episodes, as_of=args.as_of, strict=args.strict,
                              raise_on_fatal=False)
    report = result.report if isinstance(result, extract.Extract) else result
    print(report)
    if report.fatal:
        raise CareTrendsError(report.fatal_message())
    if args.summary:
        annual = derive.suppress_small(derive.annual_counts(result))
        print(annual.to_string(index=False))
    return 0


def _synth(args) -> int:
    if args.effect_level <= 0 or args.effect_slope <= 0:
        raise CareTrendsError("--effect-level and --effect-slope are rate ratios; give positive "
                              "numbers such as 0.8")
    effect = None
    if args.effect_date:
        effect = synth.Effect(str(timeline.to_date(args.effect_date)), args.effect_level, args.effect_slope)
    result = synth.synthesize(args.la, seed=args.seed, effect=effect)
    header_path, episodes_path = synth.write_synthetic(result, args.out)
    written = extract.load_903(header_path, episodes_path)
    table = synth.calibration_table(derive.annual_counts(written), result.targets)
    print(f"SYNTHETIC SSDA903 files for {result.la} (seed {args.seed}"
          + (f", effect from {effect.date}: level x{effect.level}, slope x{effect.slope}/month"
             if effect else "") + "):")
    print(f"  {header_path}\n  {episodes_path}")
    print(table[["year", "starts_target", "starts", "ceased_target", "ceased",
                 "cla_31_march_target", "cla_31_march"]].to_string(index=False))
    return 0
