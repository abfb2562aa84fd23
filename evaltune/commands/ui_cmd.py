"""``evaltune ui``: start the rating app (Streamlit), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line for the app, bound to ``host:port``, with telemetry off. It runs
    ``feedback_ui/server.py``: the app (``app.py``) served by Streamlit with the route that sets the session cookie.

    An unexpected error shows the browser only its type: its message and traceback (which can hold SQL, stored
    text or a path) go to this terminal, not to whoever is using the app.
    """
    from evaltune import feedback_ui
    from evaltune.feedback_ui import server_config

    app = Path(feedback_ui.__file__).resolve().parent / "server.py"
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
            "--client.showErrorDetails", "type", *server_config.server_flags()]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the app to the network (put TLS in front of it).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
def ui(host: str, port: int) -> None:
    """Start the rating app; log in with an account from 'evaltune users add'."""
    from evaltune.db.engine import open_store
    from evaltune.errors import user_errors
    from evaltune.feedback_ui import server_config

    with user_errors():
        open_store().close()  # migrate and check the store now, with a clear error, not inside the app
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host} exposes the app beyond this machine; serve it behind TLS",
                   err=True)
    click.echo(f"rating app on http://{host}:{port} (Ctrl-C stops it)", nl=True)
    sys.stdout.flush()
    # Streamlit replaces this process rather than running as its child: a kill (even kill -9) of the pid the
    # user started then stops the app and frees the port, instead of leaving an orphan server behind.
    command = streamlit_command(host, port)
    os.execve(command[0], command, server_config.server_environment())
