"""``evaltune demo``: ratings simulated from references -> DPO retune -> re-run, on the default model."""

from __future__ import annotations

from typing import Any

import click

from evaltune.errors import user_errors


def _line(label: str, row: dict[str, Any]) -> str:
    if not row:
        return f"{label}: not measured"
    low, high = row["ci"]
    return (f"{label}: {row['baseline']:.3f} -> {row['candidate']:.3f} (delta {row['delta']:+.3f}, "
            f"95% CI [{low:+.3f}, {high:+.3f}], q={row['q']:.3g})")


@click.command()
@click.option("--model", "model_spec", default="default", show_default=True, help="The base model.")
@click.option("--train-share", default=0.4, show_default=True, type=click.FloatRange(0.1, 0.9),
              help="Share of the factual and of the fictional items used for training; the rest is held out.")
@click.option("--epochs", default=5.0, show_default=True, type=float, help="Passes of the DPO retune over its rows.")
@click.option("--lr", "learning_rate", default=5e-4, show_default=True, type=float,
              help="Learning rate of the DPO retune.")
def demo(model_spec: str, train_share: float, epochs: float, learning_rate: float) -> None:
    """Run the whole loop with no person: base runs, simulated ratings given through the annotation queue
    (marked simulated in the store), a DPO retune, a re-run of the held-out items, and the comparison with
    wall times."""
    from evaltune import settings
    from evaltune.db.engine import open_store
    from evaltune.demo import DemoOptions, run_demo
    from evaltune.harness.model_resolution import resolve_model
    from evaltune.retune.collapse import check_lines
    from evaltune.retune.config import DpoConfig


    options = DemoOptions(home=settings.home(), train_share=train_share, threads=settings.threads(),
                          code_version=settings.code_version(),
                          config=DpoConfig(epochs=epochs, learning_rate=learning_rate))
    with user_errors():
        store = open_store()
        model = resolve_model(model_spec, home=settings.home(), threads=settings.threads())
        result = run_demo(store, model, options, log=click.echo)
    store.close()
    click.echo("")
    for line in check_lines(result.collapse_check):  # DEGRADED first, when the retune damaged the model
        click.echo(line)
    click.echo(f"adapter: model:{result.adapter_model_id} (job {result.job_id}); runs {result.runs}")
    click.echo(_line("hallucination rate, held-out fictional items", result.hallucination))
    click.echo(_line("accuracy, held-out factual items", result.accuracy))
    click.echo("wall times: " + ", ".join(f"{k} {v:.0f}s" for k, v in result.timings.items()))
