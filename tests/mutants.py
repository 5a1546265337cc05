"""The last `make mutants` run as Markdown (docs/mutants-last.md): how many mutants of each file the unit tier killed,
and every survivor as its one changed line, grouped by file and function.

    python -m tests.mutants            # after `mutmut run` (mutmut's state is in mutants/)
"""
from __future__ import annotations

import collections
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

MUTMUT = [sys.executable, "-m", "mutmut"]
_NAME = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


def statuses() -> dict[str, str]:
    r = subprocess.run([*MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True)
    return {m["name"]: m["status"] for line in r.stdout.splitlines() if (m := _NAME.match(line))}


def module_and_function(name: str) -> tuple[str, str]:
    """``bench.energy.wall.xǁWallPartǁpoll__mutmut_3`` -> ("bench/energy/wall.py", "WallPart.poll")."""
    base = name.rsplit("__mutmut_", 1)[0]
    module, _, func = base.rpartition(".x")
    if func.startswith("ǁ"):
        func = ".".join(p for p in func.split("ǁ") if p)
    else:
        func = func.lstrip("_")
    return module.replace(".", "/") + ".py", func


def changed_line(name: str) -> str:
    r = subprocess.run([*MUTMUT, "show", name], capture_output=True, text=True)
    minus = [x[1:].strip() for x in r.stdout.splitlines() if x.startswith("-") and not x.startswith("---")]
    plus = [x[1:].strip() for x in r.stdout.splitlines() if x.startswith("+") and not x.startswith("+++")]
    if len(minus) == 1 and len(plus) == 1:
        return f"`{minus[0]}` → `{plus[0]}`"
    return f"{len(minus)} lines changed"


def main() -> int:
    if not Path("mutants").is_dir():
        print("no mutants/ folder: run `make mutants` first", file=sys.stderr)
        return 2
    st = statuses()
    by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    survivors: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for name, status in st.items():
        path, func = module_and_function(name)
        by_file[path][status] += 1
        if status == "survived":
            survivors[path].append((func, name))
    kinds = sorted({s for c in by_file.values() for s in c})
    out = [f"# Mutation run of {dt.date.today().isoformat()}", "",
           "Written by `make mutants` (`python -m tests.mutants`); what each kind of survivor means and why it is "
           "accepted: [mutants.md](mutants.md).", "",
           "| file | " + " | ".join(kinds) + " | killed share |", "|---|" + "---|" * len(kinds) + "---|"]
    total = collections.Counter()
    for path in sorted(by_file):
        c = by_file[path]
        total += c
        tried = c["killed"] + c["survived"] + c["timeout"]
        share = f"{(c['killed'] + c['timeout']) / tried:.0%}" if tried else ""
        out.append(f"| {path} | " + " | ".join(str(c[k]) for k in kinds) + f" | {share} |")
    tried = total["killed"] + total["survived"] + total["timeout"]
    out.append("| **all** | " + " | ".join(str(total[k]) for k in kinds)
               + f" | {(total['killed'] + total['timeout']) / max(tried, 1):.0%} |")
    out += ["", "## Survivors", ""]
    for path in sorted(survivors):
        out.append(f"### {path}")
        out.append("")
        for func, name in sorted(survivors[path]):
            out.append(f"- {func} (`{name.rsplit('__', 1)[1]}`): {changed_line(name)}")
        out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
