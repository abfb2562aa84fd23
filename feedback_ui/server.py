"""The server ``evaltune ui`` starts (``streamlit run feedback_ui/server.py``): the app (``app.py``) served by
Streamlit's own ``st.App`` (Streamlit 1.67: Starlette under uvicorn), plus the route that sets and clears the
session cookie (``session_cookie.py``). ``streamlit run`` finds ``app`` below and serves it; importing this
module anywhere else builds the app object but starts nothing."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit import config

from evaltune.feedback_ui import session_cookie

app = st.App(Path(__file__).resolve().with_name("app.py"),
             routes=[session_cookie.route(str(config.get_option("server.baseUrlPath") or ""))])
