"""The sweep matrix: every cell of a sweep (prompt variant × model, each an ordinary run) against every metric.

A row is a cell (``variant@model``), a column a metric (``RunMetric.name``, as the run summaries print it) with
the run's own value, 95% interval and n; the best cell per metric (by the metric's direction) is marked. Every
cell but the baseline is compared with the baseline cell on their shared items by ``reports.metric_compare``,
as ``evaltune report BASELINE CANDIDATE`` would compare the two runs (paired for item means, unpaired otherwise),
and one Benjamini–Hochberg correction covers every test of the matrix (all cells × metrics): with six cells and
ten metrics, fifty tests, and a pairwise report's per-pair correction would let about 2.5 false "better"s through.

``matrix_text`` is the terminal table (``evaltune sweeps show``, ``evaltune run`` after a sweep) and
``matrix_record`` the JSON; ``reports.sweep_render`` draws Markdown and HTML from the same values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Run
from evaltune.db.sweeps import Sweep, SweepCell, cell_label, list_sweeps
from evaltune.metrics.stats.intervals import is_binary
from evaltune.metrics.stats.paired import benjamini_hochberg
from evaltune.reports.load import ReportError, RunData, SuiteItems, load_run
from evaltune.reports.metric_compare import compare_metrics, verdict
from evaltune.reports.records import Interval, MetricComparison, json_safe
from evaltune.suggestions import did_you_mean

MATRIX_SCHEMA_VERSION = 1  # matrix_record's JSON; a reader checks it before reading the rest
EXAMPLES_SHOWN = 20  # items where the cells disagree, with each cell's output
PENDING = "pending"  # a cell's status until its run completes (the store links the run then)


@dataclass(frozen=True)
class MetricColumn:
    name: str
    family: str
    higher_is_better: bool


@dataclass(frozen=True)
class CellDelta:
    """This cell − the baseline cell on one metric (``reports.metric_compare``), with the matrix-wide q-value."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # mcnemar, permutation, unpaired, none
    q_value: float  # Benjamini–Hochberg across every test of the matrix
    verdict: str  # better, worse, no significant change


@dataclass(frozen=True)
class CellValue:
    """One cell's metric: its run's own number, whether it is the best cell, and its delta (None: the baseline
    cell itself, or a metric the baseline cell lacks)."""

    value: Interval
    best: bool
    delta: CellDelta | None


@dataclass(frozen=True)
class MatrixRow:
    """One cell: ``label`` is ``variant@model`` (the --model text as given)."""

    label: str
    variant: str
    model: str
    run_id: int | None
    status: str  # the run's: running, completed, failed; or PENDING
    baseline: bool
    shared_items: int | None  # items shared with the baseline cell's run; None without runs to compare
    values: dict[str, CellValue] = field(default_factory=dict)  # metric name -> value


@dataclass(frozen=True)
class ItemExample:
    """One item the cells disagree on (a 0/1 scorer differs), with each cell's output (first sample)."""

    key: str
    question: str
    scorers: list[str]  # the 0/1 scorers whose value differs between cells
    outputs: dict[str, str | None]  # cell label -> output; None where the cell's run has none for the item
    values: dict[str, dict[str, float]]  # cell label -> scorer -> its 0/1 value


@dataclass(frozen=True)
class SweepMatrix:
    sweep_id: int
    name: str
    status: str
    created_at: str
    finished_at: str | None
    suite: str
    baseline: str  # the baseline cell's label
    metrics: list[MetricColumn]
    rows: list[MatrixRow]
    examples: list[ItemExample] = field(default_factory=list)
    disagreements: int = 0  # items the cells disagree on (examples holds the first EXAMPLES_SHOWN)

    @property
    def tests(self) -> int:
        """How many deltas the Benjamini–Hochberg correction covered."""
        return sum(1 for row in self.rows for v in row.values.values()
                   if v.delta is not None and not math.isnan(v.delta.p_value))

    def row(self, label: str) -> MatrixRow:
        return next(row for row in self.rows if row.label == label)


@dataclass(frozen=True)
class SweepSummary:
    """One line of ``evaltune sweeps list``."""

    id: int
    name: str
    status: str
    cells: int
    completed: int  # cells whose run completed
    variants: list[str]
    models: list[str]
    created_at: str


def sweep_summaries(session: Session, limit: int = 50) -> list[SweepSummary]:
    """The latest sweeps, newest first, with how many of their cells' runs completed."""
    summaries = []
    for sweep in list_sweeps(session, limit):
        cells = _cells(session, sweep.id)
        done = session.execute(select(func.count()).select_from(Run).where(
            Run.id.in_([c.run_id for c in cells if c.run_id is not None]), Run.status == "completed")).scalar_one()
        summaries.append(SweepSummary(sweep.id, sweep.name, sweep.status, len(cells), int(done),
                                      _unique(c.variant for c in cells), _unique(c.model_label for c in cells),
                                      _iso(sweep.created_at) or ""))
    return summaries


def sweep_cells(session: Session, sweep_id: int) -> list[str]:
    """The labels of a sweep's cells in order (``[]`` for an unknown sweep): the choices for ``--baseline``."""
    return [cell_label(c.variant, c.model_label) for c in _cells(session, sweep_id)]


def build_matrix(session: Session, sweep_id: int, baseline: str | None = None) -> SweepMatrix:
    """The matrix of sweep ``sweep_id`` against the cell labelled ``baseline`` (default: the first cell).

    Raises ``ReportError`` for an unknown sweep or a label that is not one of its cells.
    """
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise ReportError(f"no sweep {sweep_id} (see 'evaltune sweeps list')")
    cells = _cells(session, sweep_id)
    if not cells:
        raise ReportError(f"sweep {sweep_id} has no cells yet; run its command again to start them")
    labels = [cell_label(c.variant, c.model_label) for c in cells]
    chosen = labels[0] if baseline is None else baseline
    if chosen not in labels:
        raise ReportError(f"--baseline: sweep {sweep_id} has no cell '{baseline}'{did_you_mean(chosen, labels)}; "
                          f"its cells: {', '.join(labels)}")
    suite_items: SuiteItems = {}  # the cells' runs share a few suite versions: each is read once
    runs = {c.run_id: load_run(session, c.run_id, suite_items) for c in cells if c.run_id is not None}
    cell_runs = [runs.get(c.run_id) if c.run_id is not None else None for c in cells]
    statuses = _statuses(session, list(runs))
    base_at = labels.index(chosen)
    base = cell_runs[base_at]
    columns = _columns(list(runs.values()))
    # Keyed by the cell's place: two cells may share a run (two --model texts for one model).
    compared = {i: _compare(base, data) for i, data in enumerate(cell_runs)
                if data is not None and base is not None and i != base_at}
    q_values = _matrix_q_values(compared)
    best = _best(columns, cell_runs)
    rows = []
    for i, (cell, label, data) in enumerate(zip(cells, labels, cell_runs, strict=True)):
        shared, comparisons = compared.get(i, (None, {}))
        values = {} if data is None else {
            m.name: CellValue(Interval(m.value, m.ci_low, m.ci_high, m.n), (i, m.name) in best,
                              _delta(comparisons.get(m.name), q_values.get((i, m.name))))
            for m in data.metrics}
        status = statuses.get(cell.run_id, PENDING) if cell.run_id is not None else PENDING
        rows.append(MatrixRow(label, cell.variant, cell.model_label, cell.run_id, status, i == base_at, shared,
                              dict(sorted(values.items()))))
    examples, disagreements = _examples(labels, cell_runs)
    suite = next((data.info.suite for data in runs.values()), str((sweep.spec or {}).get("suite", "")))
    return SweepMatrix(sweep.id, sweep.name, sweep.status, _iso(sweep.created_at) or "", _iso(sweep.finished_at),
                       suite, chosen, columns, rows, examples, disagreements)


def _cells(session: Session, sweep_id: int) -> list[SweepCell]:
    return list(session.execute(select(SweepCell).where(SweepCell.sweep_id == sweep_id)
                                .order_by(SweepCell.position, SweepCell.id)).scalars())


def _statuses(session: Session, run_ids: list[int]) -> dict[int, str]:
    rows = session.execute(select(Run.id, Run.status).where(Run.id.in_(run_ids)))
    return {run_id: status for run_id, status in rows}


def _columns(runs: list[RunData]) -> list[MetricColumn]:
    """Every metric any cell's run has, by family and name; direction and family as the first run stored them."""
    seen: dict[str, MetricColumn] = {}
    for data in runs:
        for m in data.metrics:
            seen.setdefault(m.name, MetricColumn(m.name, m.family, m.higher_is_better))
    return sorted(seen.values(), key=lambda c: (c.family, c.name))


Compared = tuple[int, dict[str, MetricComparison]]  # shared items, metric name -> comparison


def _compare(base: RunData, cand: RunData) -> Compared:
    """The cell's run against the baseline's on their shared items, as ``evaltune report`` compares two runs
    (its per-pair q-values and verdicts are replaced by the matrix-wide ones)."""
    shared = sorted(set(base.items) & set(cand.items))
    if not shared:
        return 0, {}
    comparisons, _values = compare_metrics(base, cand, shared)
    return len(shared), {m.name: m for m in comparisons}


def _matrix_q_values(compared: dict[int, Compared]) -> dict[tuple[int, str], float]:
    """One Benjamini–Hochberg correction over every (cell, metric) p-value of the matrix."""
    keys = [(i, name) for i, (_n, rows) in compared.items() for name in rows]
    p_values = [compared[i][1][name].p_value for i, name in keys]
    return dict(zip(keys, benjamini_hochberg(p_values), strict=True))


def _delta(comparison: MetricComparison | None, q_value: float | None) -> CellDelta | None:
    if comparison is None or q_value is None:
        return None
    c = comparison
    return CellDelta(c.delta, c.delta_ci_low, c.delta_ci_high, c.p_value, c.test, q_value,
                     verdict(c.delta, q_value, c.higher_is_better))


def _best(columns: list[MetricColumn], cell_runs: list[RunData | None]) -> set[tuple[int, str]]:
    """(cell index, metric) of the best value of each metric by its direction; every cell tied at the best one.
    A metric only one cell has names no best: there is nothing to be better than."""
    marked: set[tuple[int, str]] = set()
    for column in columns:
        found = [(i, m.value) for i, data in enumerate(cell_runs) if data is not None for m in data.metrics
                 if m.name == column.name and not math.isnan(m.value)]
        if len(found) < 2:
            continue
        top = (max if column.higher_is_better else min)(value for _i, value in found)
        marked |= {(i, column.name) for i, value in found if math.isclose(value, top, abs_tol=1e-12)}
    return marked


def _examples(labels: list[str], runs: list[RunData | None]) -> tuple[list[ItemExample], int]:
    """Items on which a 0/1 scorer of the matrix's metrics differs between cells, most differing scorers first."""
    cell_runs = [(label, data) for label, data in zip(labels, runs, strict=True) if data is not None]
    if len(cell_runs) < 2:
        return [], 0
    # The scorers behind the matrix's metrics (not each assertion's own 0/1 score), that every cell's run has.
    scorers = sorted(set.intersection(*({m.scorer for m in data.metrics} & set(data.scores)
                                        for _label, data in cell_runs)))
    binary = [s for s in scorers if all(is_binary(list(data.scores[s].values())) for _label, data in cell_runs)]
    keys = sorted(set().union(*(data.items for _label, data in cell_runs)))
    found = []
    for key in keys:
        differing = [s for s in binary if len({data.scores[s][key] for _l, data in cell_runs
                                               if key in data.scores[s]}) > 1]
        if differing:
            found.append((key, differing))
    found.sort(key=lambda entry: (-len(entry[1]), entry[0]))
    examples = []
    for key, differing in found[:EXAMPLES_SHOWN]:
        item = next(data.items[key] for _label, data in cell_runs if key in data.items)
        examples.append(ItemExample(
            key, item["question"], differing,
            {label: data.items[key]["output"] if key in data.items else None for label, data in cell_runs},
            {label: {s: data.scores[s][key] for s in differing if key in data.scores[s]}
             for label, data in cell_runs}))
    return examples, len(found)


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- the terminal table and the JSON ------------------------------------------------------------------------------

TEXT_WIDTH = 120  # a table wider than this is cut into several, a few metrics each


def matrix_record(matrix: SweepMatrix) -> dict[str, Any]:
    """Every number of the matrix as plain JSON types (NaN → None), with its ``schema_version``."""
    data = asdict(matrix)
    data["tests"] = matrix.tests
    return {"schema_version": MATRIX_SCHEMA_VERSION, **json_safe(data)}


def matrix_text(matrix: SweepMatrix) -> str:
    """The matrix as terminal tables: values (``*`` best) and, per cell, the delta against the baseline."""
    lines = [header_line(matrix), f"baseline: {matrix.baseline}", ""]
    if not matrix.metrics:
        return "\n".join([*lines, _status_table(matrix), "", "no metrics yet: no cell's run has finished"]) + "\n"
    value_rows = [[_value_text(row.values.get(col.name)) for col in matrix.metrics] for row in matrix.rows]
    lines += _tables(matrix, matrix.rows, ["run", "status"], [[str(r.run_id or "-"), r.status] for r in matrix.rows],
                     value_rows)
    lines += ["", "* best cell for the metric (↑ higher is better, ↓ lower is better)"]
    others = [row for row in matrix.rows if not row.baseline]
    if not others:
        return "\n".join(lines) + "\n"
    lines += ["", f"delta against {matrix.baseline} on shared items, [95% CI], q: Benjamini–Hochberg over the "
                  f"matrix's {matrix.tests} tests", ""]
    delta_rows = [[_delta_text(row.values.get(col.name)) for col in matrix.metrics] for row in others]
    lines += _tables(matrix, others, ["shared"], [["-" if r.shared_items is None else str(r.shared_items)]
                                                  for r in others], delta_rows)
    return "\n".join(lines).rstrip() + "\n"


def header_line(matrix: SweepMatrix) -> str:
    variants = _unique(row.variant for row in matrix.rows)
    models = _unique(row.model for row in matrix.rows)
    return (f"sweep {matrix.sweep_id} '{matrix.name}' [{matrix.status}]: suite {matrix.suite}, "
            f"{len(variants)} variant{'s' * (len(variants) != 1)} × {len(models)} model{'s' * (len(models) != 1)}"
            f" = {len(matrix.rows)} cells")


def _status_table(matrix: SweepMatrix) -> str:
    rows = [["cell", "run", "status"], *[[r.label, str(r.run_id or "-"), r.status] for r in matrix.rows]]
    return "\n".join(_aligned(rows))


def _value_text(value: CellValue | None) -> str:
    if value is None:
        return "-"
    v = value.value
    return f"{_num(v.value)} [{_num(v.ci_low)}, {_num(v.ci_high)}] n={v.n}" + (" *" if value.best else "")


def _delta_text(value: CellValue | None) -> str:
    if value is None or value.delta is None:
        return "-"
    d = value.delta
    return (f"{_signed(d.delta)} [{_signed(d.ci_low)}, {_signed(d.ci_high)}] q={_num(d.q_value)}"
            + ("" if d.verdict.startswith("no ") else f" {d.verdict}"))


def _tables(matrix: SweepMatrix, rows: list[MatrixRow], lead_names: list[str], lead: list[list[str]],
            cells: list[list[str]]) -> list[str]:
    """Rows = cells, columns = metrics, cut into several tables when one would be wider than TEXT_WIDTH."""
    labels = [("▶ " if r.baseline else "  ") + r.label for r in rows]
    fixed = max(map(len, ["  cell", *labels])) + sum(max(len(n), *(len(x[i]) for x in lead)) + 2
                                                     for i, n in enumerate(lead_names))
    names = [c.name + (" ↑" if c.higher_is_better else " ↓") for c in matrix.metrics]
    widths = [max(len(n), *(len(row[i]) for row in cells)) + 2 for i, n in enumerate(names)]
    groups: list[list[int]] = [[]]
    for i, width in enumerate(widths):
        if groups[-1] and fixed + sum(widths[j] for j in groups[-1]) + width > TEXT_WIDTH:
            groups.append([])
        groups[-1].append(i)
    out: list[str] = []
    for group in groups:
        table = [["  cell", *lead_names, *(names[i] for i in group)]]
        table += [[label, *lead_row, *(row[i] for i in group)]
                  for label, lead_row, row in zip(labels, lead, cells, strict=True)]
        out += [*_aligned(table), ""]
    return out[:-1]


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _num(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f}"


def _signed(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.3f}"
