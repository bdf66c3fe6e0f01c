"""Charts for the digest and the reports page, rendered to PNG with matplotlib (no display needed).

Images, not JavaScript: they show in every mail client and need nothing from the network. Each
function takes figures from inbox/reports.py plus the (already translated) words to print, and
returns PNG bytes. matplotlib's object API (`Figure` + the Agg canvas) is used instead of pyplot,
which keeps global state and is not safe in the worker's and web server's threads.

matplotlib (and numpy under it) is imported on the first chart, not with this module: the web app
and the worker import the reports and the digest at start, but draw charts only when a manager
opens the reports or once a week for the digest (#16).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_IN, DPI = 6.4, 100
INK, MUTED, GRID = "#1f2933", "#616e7c", "#d9e2ec"
DESIRED, ADEQUATE, PREVIOUS, CURRENT, WARN = "#1f6b2c", "#7fb77e", "#bcccdc", "#1d5f8a", "#c05621"


@functools.cache
def _matplotlib() -> tuple[Any, Any]:
    """matplotlib's Figure and Agg canvas, imported once per process on the first chart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def _figure(height_in: float) -> tuple[Figure, object]:
    figure_class, canvas_class = _matplotlib()
    fig = figure_class(figsize=(WIDTH_IN, height_in), dpi=DPI)
    canvas_class(fig)
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=9)
    ax.title.set_color(INK)
    return fig, ax


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    # No creation time or software version in the file: the same figures give the same bytes.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _empty(ax: object, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=MUTED, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def service_levels_chart(channels: Sequence[Mapping], *, metric: str, title: str, desired_label: str,
                         adequate_label: str, empty_label: str) -> bytes:
    """Per channel: the share that met desired and the share that met adequate (0-100 %)."""
    rows = [c for c in channels if c[metric]["decided"]]
    fig, ax = _figure(max(1.6, 0.5 + 0.42 * len(rows)) if rows else 1.6)
    ax.set_title(title, fontsize=11, loc="left")
    if not rows:
        _empty(ax, empty_label)
        return _png(fig)
    names = [c["channel"] for c in rows][::-1]
    desired = [100 * c[metric]["share_desired"] for c in rows][::-1]
    adequate = [100 * c[metric]["share_adequate"] for c in rows][::-1]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], adequate, height=0.38, color=ADEQUATE, label=adequate_label)
    ax.barh([i - 0.2 for i in y], desired, height=0.38, color=DESIRED, label=desired_label)
    for i, (d, a) in enumerate(zip(desired, adequate, strict=True)):
        ax.text(a + 1, i + 0.2, f"{a:.0f}%", va="center", fontsize=8, color=MUTED)
        ax.text(d + 1, i - 0.2, f"{d:.0f}%", va="center", fontsize=8, color=MUTED)
    ax.set_yticks(list(y), names)
    ax.set_xlim(0, 112)
    ax.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
    ax.grid(axis="x", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _png(fig)


def csat_by_wait_chart(bands: Sequence[Mapping], band_labels: Mapping[str, str], *, title: str,
                       answers_label: Callable[[int], str], empty_label: str) -> bytes:
    """Average satisfaction (1-5) per first-response band, with the number of answers on each bar.

    `answers_label(n)` gives that number in words ("1 answer", "3 answers"): plurals differ per language.
    """
    fig, ax = _figure(2.6)
    ax.set_title(title, fontsize=11, loc="left")
    if not any(b["answers"] for b in bands):
        _empty(ax, empty_label)
        return _png(fig)
    labels = [band_labels[b["band"]] for b in bands]
    values = [b["average"] or 0 for b in bands]
    colors = [WARN if (b["average"] or 5) < 3.5 else CURRENT for b in bands]
    bars = ax.bar(labels, values, color=colors, width=0.6)
    for bar, band in zip(bars, bands, strict=True):
        if band["answers"]:
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.08,
                    f"{band['average']:.1f} ({answers_label(band['answers'])})", ha="center", fontsize=8,
                    color=MUTED)
    ax.set_ylim(0, 5.6)
    ax.set_yticks([1, 2, 3, 4, 5])
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    return _png(fig)


def volume_chart(current: Mapping[str, int], previous: Mapping[str, int], *, title: str, current_label: str,
                 previous_label: str, empty_label: str) -> bytes:
    """Conversations per channel, this period beside the one before."""
    names = sorted(set(current) | set(previous))
    fig, ax = _figure(2.6)
    ax.set_title(title, fontsize=11, loc="left")
    if not names:
        _empty(ax, empty_label)
        return _png(fig)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [previous.get(n, 0) for n in names], width=0.38, color=PREVIOUS,
           label=previous_label)
    bars = ax.bar([i + 0.2 for i in x], [current.get(n, 0) for n in names], width=0.38, color=CURRENT,
                  label=current_label)
    for bar in bars:
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{int(bar.get_height())}", ha="center",
                va="bottom", fontsize=8, color=MUTED)
    ax.set_xticks(list(x), names, rotation=0 if len(names) < 6 else 30)
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def backlog_chart(by_age: Mapping[str, int], age_labels: Mapping[str, str], *, title: str) -> bytes:
    """Open conversations by age."""
    fig, ax = _figure(2.2)
    ax.set_title(title, fontsize=11, loc="left")
    keys = list(by_age)
    values = [by_age[k] for k in keys]
    colors = [CURRENT if i < 2 else WARN for i in range(len(keys))]
    bars = ax.bar([age_labels[k] for k in keys], values, color=colors, width=0.6)
    for bar in bars:
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{int(bar.get_height())}", ha="center",
                va="bottom", fontsize=8, color=MUTED)
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    return _png(fig)
