"""The tables of docs/safety.md's "Figures" section, from a report written by
``python -m training.train_safety --report FILE`` (or ``haven-cli safety eval --json``):

    .venv/bin/python -m training.report_tables report.json > tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _rates(groups: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(g["group"], g["kind"]): g for g in groups}


def stage_tables(name: str, title: str, stage: dict[str, Any]) -> list[str]:
    out = [f"#### {title}: threshold {stage['threshold']}", "",
           "Pooled over every left-out source (leave-one-source-out):", "",
           "| threshold | harmful caught | benign blocked | look-alikes blocked |", "|---|---|---|---|"]
    for row in stage["curve"]:
        out.append(f"| {row['threshold']} | {pct(row.get('harmful'))} | {pct(row.get('benign'))} | "
                   f"{pct(row.get('lookalike'))} |")
    out += ["", f"Per source at the threshold {stage['threshold']} (left out / random split):", "",
            "| source | kind | items | left out | random split |", "|---|---|---|---|---|"]
    split = _rates(stage["random_split"]["sources"])
    for kind in ("benign", "harmful", "lookalike"):
        for g in stage["loso"]["sources"]:
            if g["kind"] == kind:
                other = split.get((g["group"], kind))
                out.append(f"| {g['group']} | {kind} | {g['items']} | {pct(g['rate'])} | "
                           f"{pct(other['rate']) if other else '–'} |")
    if name == "input":
        out += ["", "Per language (left out / random split):", "",
                "| language | harmful caught | benign blocked | look-alikes blocked |", "|---|---|---|---|"]
        loso, rs = _rates(stage["loso"]["languages"]), _rates(stage["random_split"]["languages"])
        for language in sorted({g["group"] for g in stage["loso"]["languages"]}):
            cells = []
            for kind in ("harmful", "benign", "lookalike"):
                a, b = loso.get((language, kind)), rs.get((language, kind))
                cells.append("–" if a is None else
                             f"{pct(a['rate'])} / {pct(b['rate']) if b else '–'} ({a['items']})")
            out.append(f"| {language} | " + " | ".join(cells) + " |")
        out += ["", "Per style of harmful prompt (left out):", "", "| style | items | caught |", "|---|---|---|"]
        for g in stage["loso"]["styles"]:
            if g["kind"] == "harmful":
                out.append(f"| {g['group']} | {g['items']} | {pct(g['rate'])} |")
    return [*out, ""]


def main() -> int:
    report = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    lines: list[str] = []
    for name, title in (("input", "Input check (prompts)"),
                        ("output", "Output filter (replies, judged with their request)")):
        if name in report:
            lines += stage_tables(name, title, report[name])
    lines += ["Summary (`summary` of the report):", "", "```json", json.dumps(report["summary"], indent=1,
                                                                             ensure_ascii=False), "```"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
