"""Rendering the report: its sections are data (``Section`` holding text, ``Table`` and ``Figure`` blocks, built by
``analysis.report``); this module turns them into markdown and matplotlib PNGs. Nothing here computes a figure."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Bars:
    """One bar series: a value per label; ``bottom`` stacks it on another series' values."""

    values: list[float]
    colors: list[str] | str = "#4C72B0"
    hatches: list[str | None] | None = None
    yerr: tuple[list[float], list[float]] | None = None  # (below, above) the value
    label: str = ""
    bottom: list[float] | None = None


@dataclass
class BarChart:
    labels: list[str]
    series: list[Bars]
    ylabel: str
    title: str = ""
    log: bool = False
    label_size: int = 7
    rotate: int = 0
    legend: list[tuple[str, str, str | None]] = field(default_factory=list)  # (label, color, hatch)


@dataclass
class Line:
    label: str
    x: list[float]
    y: list[float]
    style: str = "-"
    color: str | None = None
    marker: str | None = None


@dataclass
class LineChart:
    lines: list[Line]
    xlabel: str
    ylabel: str
    title: str = ""
    marks: list[tuple[float, float, str]] = field(default_factory=list)  # vertical marker at x, text at (x, y)
    logx: bool = False


@dataclass
class Scatter:
    """Labeled points (x, y, label, color) and an optional line through some of them (a Pareto front)."""

    points: list[tuple[float, float, str, str]]
    xlabel: str
    ylabel: str
    title: str = ""
    logx: bool = False
    logy: bool = False
    front: list[tuple[float, float]] = field(default_factory=list)
    front_label: str = ""


@dataclass
class Figure:
    file: str  # under figures/
    alt: str
    caption: str
    panels: list[BarChart | LineChart | Scatter]
    suptitle: str = ""
    size: tuple[float, float] = (9, 5)


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Figure] = field(default_factory=list)
    level: int = 2


# ---------------------------------------------------------------------------------------------------- markdown


def md_cell(value) -> str:
    """A table cell's text as Markdown keeps it in its cell: a ``|`` escaped, line breaks as spaces."""
    return " ".join(str(value).splitlines()).replace("|", "\\|")


def spreadsheet_cell(value):
    """A value for a CSV a person may open in a spreadsheet: text starting with = + - @ (or a tab or carriage
    return) gets a leading ' so it is shown, never evaluated as a formula; numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def md_table(t: Table) -> str:
    lines = ["| " + " | ".join(md_cell(c) for c in t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in t.rows]
    return "\n".join(lines)


def markdown(sections: list[Section], head: list[str]) -> str:
    out = list(head)
    for s in sections:
        out += ["#" * s.level + " " + s.title, ""]
        for b in s.blocks:
            if isinstance(b, Table):
                out += [md_table(b), ""]
            elif isinstance(b, Figure):
                alt = " ".join(b.alt.split()).replace("[", "(").replace("]", ")")
                out += [f"![{alt}](figures/{b.file})", "", f"*Figure: {' '.join(b.caption.splitlines())}*", ""]
            else:
                out += [b, ""]
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------------------------ plots


def _t(text: str) -> str:
    """Text as matplotlib should print it: a dollar sign is a dollar sign, not the start of math."""
    return text.replace("$", r"\$")


def _bars(ax, c: BarChart) -> None:
    x = range(len(c.labels))
    for s in c.series:
        bars = ax.bar(x, s.values, yerr=s.yerr, capsize=4 if s.yerr else 0, color=s.colors, bottom=s.bottom,
                      label=_t(s.label) or None, edgecolor="black" if s.hatches else None)
        for bar, h in zip(bars, s.hatches or []):
            if h:
                bar.set_hatch(h)
    ax.set_xticks(list(x), [_t(lab) for lab in c.labels], fontsize=c.label_size, rotation=c.rotate,
                  ha="right" if c.rotate else "center")
    if c.log:
        ax.set_yscale("log")
    if c.legend:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(facecolor=col, hatch=h, edgecolor="black", label=_t(lab)) for lab, col, h in c.legend])
    elif any(s.label for s in c.series):
        ax.legend()


def _lines(ax, c: LineChart) -> None:
    for ln in c.lines:
        ax.plot(ln.x, ln.y, ln.style, color=ln.color, marker=ln.marker, label=_t(ln.label))
    for x, y, text in c.marks:
        ax.axvline(x, color="gray", lw=0.8, ls=":")
        ax.annotate(_t(text), (x, y), textcoords="offset points", xytext=(5, -15), fontsize=8)
    if c.logx:
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({x for ln in c.lines for x in ln.x}))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(_t(c.xlabel))
    ax.legend(fontsize=8)


def _scatter(ax, c: Scatter) -> None:
    if c.front:
        xs, ys = zip(*sorted(c.front))
        ax.plot(xs, ys, "--", color="gray", lw=1, label=_t(c.front_label) or None, zorder=1)
    for x, y, label, color in c.points:
        ax.scatter([x], [y], color=color, s=40, zorder=2)
        ax.annotate(_t(label), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    if c.logx:
        ax.set_xscale("log")
    if c.logy:
        ax.set_yscale("log")
    ax.set_xlabel(_t(c.xlabel))
    if c.front_label:
        ax.legend(fontsize=8)


def plot(fig_spec: Figure, figdir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fig_spec.panels), figsize=fig_spec.size, squeeze=False)
    for ax, panel in zip(axes[0], fig_spec.panels):
        {BarChart: _bars, LineChart: _lines, Scatter: _scatter}[type(panel)](ax, panel)
        ax.set_ylabel(_t(panel.ylabel))
        if panel.title:
            ax.set_title(_t(panel.title))
    if fig_spec.suptitle:
        fig.suptitle(_t(fig_spec.suptitle))
    fig.tight_layout()
    path = Path(figdir) / fig_spec.file
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figures(sections: list[Section]) -> list[Figure]:
    return [b for s in sections for b in s.blocks if isinstance(b, Figure)]


# ---------------------------------------------------------------------------------------------------- plotly


def _plotly_text(text: str) -> str:
    return text.replace("\n", "<br>")


def plotly_panels(fig_spec: Figure) -> list[dict]:
    """A figure's panels as plotly figures ({data, layout}), one per panel: the page draws the same data the PNG
    shows, interactively (hover for values)."""
    out = []
    for panel in fig_spec.panels:
        data, layout = [], {"title": {"text": _plotly_text(panel.title), "font": {"size": 13}},
                            "yaxis": {"title": {"text": panel.ylabel}}, "margin": {"t": 40, "b": 90},
                            "legend": {"font": {"size": 10}}, "hovermode": "closest"}
        if isinstance(panel, BarChart):
            labels = [_plotly_text(lab) for lab in panel.labels]
            for s in panel.series:
                tr = {"type": "bar", "x": labels, "y": s.values, "name": s.label, "showlegend": bool(s.label),
                      "marker": {"color": s.colors,
                                 "pattern": {"shape": [("/" if h else "") for h in (s.hatches or [])]}}}
                if s.yerr:
                    tr["error_y"] = {"type": "data", "symmetric": False, "array": s.yerr[1], "arrayminus": s.yerr[0]}
                if s.bottom is not None:
                    tr["base"] = s.bottom
                data.append(tr)
            if panel.log:
                layout["yaxis"]["type"] = "log"
            layout["xaxis"] = {"tickfont": {"size": max(8, panel.label_size + 1)},
                               "tickangle": -(panel.rotate or (30 if len(labels) > 6 else 0))}
            if any(s.bottom is not None for s in panel.series):
                layout["barmode"] = "overlay"
        elif isinstance(panel, LineChart):
            for ln in panel.lines:
                dash = {"--": "dash", ":": "dot", "-.": "dashdot"}.get(ln.style, "solid")
                data.append({"type": "scatter", "mode": "lines+markers" if ln.marker else "lines", "x": ln.x,
                             "y": ln.y, "name": ln.label, "line": {"dash": dash, "color": ln.color}})
            layout["xaxis"] = {"title": {"text": panel.xlabel}, "type": "log" if panel.logx else "linear"}
            layout["shapes"] = [{"type": "line", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1,
                                 "line": {"dash": "dot", "color": "gray", "width": 1}} for x, _, _ in panel.marks]
            layout["annotations"] = [{"x": x, "y": y, "text": _plotly_text(t), "showarrow": False, "xanchor": "left",
                                      "font": {"size": 10}} for x, y, t in panel.marks]
        else:  # Scatter
            if panel.front:
                xs, ys = zip(*sorted(panel.front))
                data.append({"type": "scatter", "mode": "lines", "x": list(xs), "y": list(ys),
                             "name": panel.front_label, "line": {"dash": "dash", "color": "gray"}})
            data.append({"type": "scatter", "mode": "markers+text", "x": [p[0] for p in panel.points],
                         "y": [p[1] for p in panel.points], "text": [p[2] for p in panel.points],
                         "textposition": "top right", "marker": {"color": [p[3] for p in panel.points], "size": 10},
                         "name": "", "showlegend": False})
            layout["xaxis"] = {"title": {"text": panel.xlabel}, "type": "log" if panel.logx else "linear"}
            if panel.logy:
                layout["yaxis"]["type"] = "log"
        out.append({"data": data, "layout": layout})
    return out
