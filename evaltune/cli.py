"""The ``evaltune`` command: one click group, one small module per subcommand."""

from __future__ import annotations

import sys

import click

from evaltune import settings
from evaltune.commands import (
    campaigns_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    exchange_cmd,
    gate_cmd,
    jobs_cmd,
    judge_cmd,
    lineage_cmd,
    models_cmd,
    ratings_cmd,
    report_cmd,
    retune_cmd,
    run_cmd,
    runs_cmd,
    score_cmd,
    scorers_cmd,
    suites_cmd,
    sweeps_cmd,
    ui_cmd,
    users_cmd,
    worker_cmd,
)
from evaltune.errors import UserError, show_click_error
from evaltune.settings import SettingError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="evaltune")
def cli() -> None:
    """Evaluate a language model, rate its outputs, retune it, and compare: one loop, with lineage.

    Data lives in $EVALTUNE_HOME (default ~/.evaltune); set EVALTUNE_DB_URL for PostgreSQL.
    """
    settings.quiet_third_party_progress()


cli.add_command(run_cmd.run)
cli.add_command(runs_cmd.runs)
cli.add_command(suites_cmd.suites)
cli.add_command(models_cmd.models)
cli.add_command(db_cmd.db)
cli.add_command(scorers_cmd.scorers)
cli.add_command(score_cmd.score)
cli.add_command(users_cmd.users)
cli.add_command(ui_cmd.ui)
cli.add_command(campaigns_cmd.campaigns)
cli.add_command(ratings_cmd.ratings)
cli.add_command(data_cmd.data)
cli.add_command(retune_cmd.retune)
cli.add_command(worker_cmd.worker)
cli.add_command(jobs_cmd.jobs)
cli.add_command(judge_cmd.judge)
cli.add_command(lineage_cmd.lineage)
cli.add_command(demo_cmd.demo)
cli.add_command(report_cmd.report)
cli.add_command(gate_cmd.gate)
cli.add_command(sweeps_cmd.sweeps)
campaigns_cmd.campaigns.add_command(exchange_cmd.export_campaign)  # Label Studio / Argilla out
campaigns_cmd.campaigns.add_command(exchange_cmd.import_annotations)  # and their annotations back in
ratings_cmd.ratings.add_command(exchange_cmd.ratings_to_dataset)  # Hugging Face datasets (Parquet, hub)
data_cmd.data.add_command(exchange_cmd.data_to_dataset)


def main() -> None:
    """Entry point: user errors print one line and exit 2; nothing else is swallowed."""
    try:
        cli.main(standalone_mode=False)
    except (UserError, SettingError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        show_click_error(error)
        sys.exit(2)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
