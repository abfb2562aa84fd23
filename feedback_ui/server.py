"""The server ``evaltune ui`` starts (``streamlit run feedback_ui/server.py``): the app (``app.py``) served by
Streamlit's own ``st.App`` (Streamlit 1.67: Starlette under uvicorn), plus the route that sets and clears the
session cookie (``session_cookie.py``). ``streamlit run`` finds ``app`` below and serves it; importing this
module anywhere else builds the app object but starts nothing. Importing it also limits the process's malloc
arenas (``server_config.limit_malloc_arenas``), which keeps the server's memory flat over a day of ratings."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit import config

from evaltune.feedback_ui import server_config, session_cookie

server_config.limit_malloc_arenas()
app = st.App(Path(__file__).resolve().with_name("app.py"),
             routes=[session_cookie.route(str(config.get_option("server.baseUrlPath") or ""))])
