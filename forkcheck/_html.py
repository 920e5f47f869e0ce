"""HTML views of results, violations, traces and states: what ``_repr_html_`` shows in Jupyter.

Apart from the notebook module, so that the value types (``_results``,
``_trace``) can show themselves without loading trio and networkx, and
without importing the notebook back.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from . import _where

if TYPE_CHECKING:  # pragma: no cover
    from . import _protocol as P
    from ._results import CheckResult, Violation
    from ._trace import Trace


def _e(x: Any) -> str:
    return html.escape(str(x))


_TABLE = 'style="border-collapse:collapse;text-align:left;font-size:90%"'
_CELL = 'style="text-align:left;vertical-align:top;padding:2px 8px"'
_RED = "#c0392b"


def trace_html(trace: Trace) -> str:
    """A trace as an HTML table (the loop of a lasso marked)."""
    if len(trace) == 0:
        return "<div><i>(the initial state)</i></div>"
    rows = []
    for i, s in enumerate(trace, 1):
        if trace.cycle_start is not None and i - 1 == trace.cycle_start:
            rows.append(f'<tr><td {_CELL} colspan="4"><i>— the loop starts here —</i></td></tr>')
        rows.append(f"<tr><td {_CELL}>{i}</td><td {_CELL}><b>{_e(s.actor)}</b></td><td {_CELL}><code>{_e(s.label)}"
                    f"</code></td><td {_CELL}>{_e(_where.short(s.where)) if s.where else ''}</td></tr>")
    if trace.cycle_start is not None:
        rows.append(f'<tr><td {_CELL} colspan="4"><i>— then back to step {trace.cycle_start + 1}, forever —</i></td></tr>')
    head = f"<tr><th {_CELL}>#</th><th {_CELL}>actor</th><th {_CELL}>transition</th><th {_CELL}>at</th></tr>"
    return f'<table class="forkcheck-trace" {_TABLE}>{head}{"".join(rows)}</table>'


def state_html(desc: P.Description | None) -> str:
    """A state description as HTML: a table of actors, then the shared state."""
    if desc is None:
        return "<div><i>(no process: nothing to show)</i></div>"
    rows = []
    shared = getattr(desc, "shared", None) or {}
    for a in desc.actors:
        frames = []
        for fn, where, loc in a.frames:
            shown = ", ".join(f"{_e(k)}=<code>{_e(v)}</code>" for k, v in loc.items() if k not in shared)
            frames.append(f"<div><span style='color:#555'>{_e(fn.rsplit('.', 1)[-1])}:</span> {shown}</div>")
        rows.append(f"<tr><td {_CELL}><b>{_e(a.name)}</b></td><td {_CELL}>{_e(a.status)}</td>"
                    f"<td {_CELL}><code>{_e(a.waiting)}</code></td><td {_CELL}>{_e(_where.short(a.where)) if a.where else ''}"
                    f"</td><td {_CELL}>{''.join(frames)}</td></tr>")
    head = (f"<tr><th {_CELL}>actor</th><th {_CELL}>status</th><th {_CELL}>waiting for</th><th {_CELL}>at</th>"
            f"<th {_CELL}>locals</th></tr>")
    out = [f'<table class="forkcheck-actors" {_TABLE}>{head}{"".join(rows)}</table>'] if rows else []
    if any(v is not None for v in shared.values()):
        g = "".join(f"<tr><td {_CELL}><code>{_e(k)}</code></td><td {_CELL}><code>{_e(v)}</code></td></tr>"
                    for k, v in shared.items() if v is not None)
        out.append(f"<div><b>Shared by the actors</b></div><table {_TABLE}>{g}</table>")
    if desc.view is not None:
        out.append(f"<div><b>Shared state</b></div><pre style='white-space:pre-wrap'>{_e(desc.view)}</pre>")
    elif desc.globals:
        g = "".join(f"<tr><td {_CELL}><code>{_e(k)}</code></td><td {_CELL}><code>{_e(v)}</code></td></tr>"
                    for k, v in desc.globals.items())
        out.append(f"<div><b>Globals</b></div><table {_TABLE}>{g}</table>")
    return "".join(out)


def violation_html(v: Violation) -> str:
    """A violation: what fails, the counterexample, details, the state, the replay line."""
    where = "in the initial state" if len(v.trace) == 0 else f"after {len(v.trace)} step{'s' if len(v.trace) > 1 else ''}"
    out = [f'<div class="forkcheck-violation" style="border-left:4px solid {_RED};padding-left:8px;margin:6px 0">',
           f"<div style='color:{_RED}'><b>{_e(v.kind)} violation</b> {_e(where)}: {_e(v.message)}</div>",
           "<div><b>Counterexample</b></div>", trace_html(v.trace)]
    if v.details:
        out.append(f"<pre style='white-space:pre-wrap'>{_e(v.details.rstrip())}</pre>")
    if v.state is not None:
        out += [f"<div><b>{_e(v.state_heading)}</b></div>", state_html(v.state)]
    out.append(f"<div style='color:#555'>Replay it with <code>forkcheck.replay({_e(v.model or 'model')}, "
               f"{_e(repr(v.trace.token))})</code></div></div>")
    return "".join(out)


def result_html(r: CheckResult) -> str:
    """A check result: its statistics, then each violation."""
    s = r.stats
    color = "#2e7d32" if r.ok else _RED
    verdict = "no violation" if r.ok else f"{len(r.violations)} violation{'s' if len(r.violations) > 1 else ''}"
    cells = [("states", s.states), ("transitions", s.transitions), ("depth", s.max_depth),
             ("seconds", f"{s.seconds:.2f}"), ("complete", "yes" if r.complete else f"no ({'; '.join(r.incomplete)})")]
    if s.memory.sharing is not None:
        cells.append(("sharing", f"{s.memory.sharing:.1%}"))
    table = "".join(f"<tr><th {_CELL}>{_e(k)}</th><td {_CELL}>{_e(v)}</td></tr>" for k, v in cells)
    out = [f'<div class="forkcheck-result"><div><b>{_e(r.model or "model")}</b>: '
           f"<b style='color:{color}'>{_e(verdict)}</b></div><table {_TABLE}>{table}</table>"]
    out += [violation_html(v) for v in r.violations]
    out.append("</div>")
    return "".join(out)
