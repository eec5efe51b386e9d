"""A run's evaluation as one self-contained HTML page: summary, figures, config, provenance.

The page needs no network and no JavaScript: figures are inline PNG data URIs, the CSS is
inline, and everything that comes from data or config is HTML-escaped.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from matplotlib.figure import Figure

from physgan.atomic import write_atomic

__all__ = ["SummaryRow", "write_report"]

_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-family: monospace; }
td.matches { color: #1a7f37; font-weight: bold; }
td.worse { color: #b3261e; font-weight: bold; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-style: italic; margin-top: 0.3em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""


@dataclass(frozen=True)
class SummaryRow:
    """One metric of the summary table: the fields of ``physgan.metrics.floor.FloorResult``
    with the metric's name in front, so ``SummaryRow("W1M x 10^3", *result)`` builds one.

    ``value`` +- ``std`` is the metric between generated and real samples; ``floor`` +-
    ``floor_std`` the same metric between two disjoint real samples of the same size (the noise
    floor); ``verdict`` e.g. "matches" or "2.3x floor". Values are shown as given, so a scaled
    metric names its scale in ``metric``.
    """

    metric: str
    value: float
    std: float
    floor: float
    floor_std: float
    verdict: str


def _figure_png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes; then closed, should pyplot manage it (a plain Figure needs not)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    if fig.canvas.manager is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buffer.getvalue()


def _summary(rows: Sequence[SummaryRow]) -> str:
    lines = [
        "<table>",
        "<tr><th>metric</th><th>generated vs real</th><th>noise floor (real vs real)</th>"
        "<th>verdict</th></tr>",
    ]
    for row in rows:
        kind = "matches" if row.verdict == "matches" else "worse"
        lines.append(
            f"<tr><td>{escape(row.metric)}</td>"
            f'<td class="num">{row.value:.4g} &plusmn; {row.std:.2g}</td>'
            f'<td class="num">{row.floor:.4g} &plusmn; {row.floor_std:.2g}</td>'
            f'<td class="{kind}">{escape(row.verdict)}</td></tr>'
        )
    lines.append("</table>")
    return "\n".join(lines)


def _figures(figures: Sequence[tuple[str, Figure]]) -> str:
    blocks = []
    for caption, fig in figures:
        data = base64.b64encode(_figure_png(fig)).decode("ascii")
        blocks.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    return "\n".join(blocks)


def _key_values(items: Mapping[str, object]) -> str:
    cells = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in items.items()
    )
    return f"<table>{cells}</table>"


def write_report(
    path: str | Path,
    *,
    title: str,
    summary_rows: Sequence[SummaryRow | Mapping[str, object]],
    figures: Sequence[tuple[str, Figure]],
    config_text: str,
    provenance: Mapping[str, object],
) -> Path:
    """Write the report page to ``path`` atomically and return the path.

    Args:
        title: the page's heading.
        summary_rows: :class:`SummaryRow` objects, or dicts of its fields.
        figures: (caption, figure) pairs, shown in order; each is encoded as PNG, then closed
            if pyplot manages it.
        config_text: the run's resolved config (e.g. YAML), shown verbatim.
        provenance: e.g. version, seed, data file SHA-256, date; shown as a table in order.

    >>> import tempfile
    >>> out = write_report(Path(tempfile.mkdtemp()) / "report.html", title="run <1>",
    ...     summary_rows=[SummaryRow("W1M x 10^3", 1.0, 0.1, 0.9, 0.2, "matches")],
    ...     figures=[], config_text="seed: 1", provenance={"seed": 1})
    >>> "<h1>run &lt;1&gt;</h1>" in out.read_text()
    True
    """
    rows = [row if isinstance(row, SummaryRow) else SummaryRow(**row) for row in summary_rows]
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<h2>Summary</h2>
<p>Each metric between generated and real samples beside its noise floor, the same metric
between two disjoint real samples of the same size (mean &plusmn; spread over batches).</p>
{_summary(rows)}
<h2>Figures</h2>
{_figures(figures)}
<h2>Configuration</h2>
<pre>{escape(config_text)}</pre>
<h2>Provenance</h2>
{_key_values(provenance)}
</body>
</html>
"""
    write_atomic(path, page)
    return Path(path)
