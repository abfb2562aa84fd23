"""The one HTTP route the app adds to Streamlit's server: ``/evaltune/session``, which sets and clears the
session cookie (a Streamlit script never sees the HTTP response, so it cannot set an HttpOnly cookie itself).

- ``POST`` with ``{"code": ...}``: the one-time code the log-in made (``sessions.hand_over``) is traded, once,
  for the session cookie (HttpOnly, SameSite=Strict, Secure over https, Path, Max-Age). The page posts it with
  ``fetch`` from the app's own origin (``app_state.cookie_exchange``), so the token never appears in the page,
  a URL or the browser's history.
- ``DELETE``: clears the cookie (after a log-out, or when the store refused it); the session itself is revoked
  in the store, which is what counts.

Both answer only the app's own origin: a JSON body needs a CORS preflight that is never granted, and the
browser's ``Sec-Fetch-Site`` (or, from older browsers, ``Origin``) must say same-origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evaltune.feedback_ui import sessions


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == request.headers.get("host")


def _trade(body: object) -> str | None:
    return sessions.take_over(str(body.get("code", ""))) if isinstance(body, dict) else None


def route(base_path: str) -> Route:
    """The route, under Streamlit's ``server.baseUrlPath`` (``base_path``)."""
    base = base_path.strip("/")

    async def session_cookie(request: Request) -> Response:
        if not _same_origin(request):
            return Response("same-origin requests only", status_code=403)
        cookie = sessions.cookie_attributes(base, https=request.url.scheme == "https")
        answer = Response(status_code=204, headers={"Cache-Control": "no-store"})
        if request.method == "DELETE":
            answer.delete_cookie(sessions.COOKIE_NAME, path=cookie.path, secure=cookie.secure, httponly=True,
                                 samesite=sessions.COOKIE_SAMESITE)
            return answer
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return Response("send the code as JSON", status_code=415)
        try:
            token = _trade(await request.json())
        except ValueError:
            return Response("send the code as JSON", status_code=400)
        if token is None:
            return Response("unknown or used code; log in again", status_code=403)
        answer.set_cookie(sessions.COOKIE_NAME, token, max_age=cookie.max_age, path=cookie.path,
                          secure=cookie.secure, httponly=True, samesite=sessions.COOKIE_SAMESITE)
        return answer

    return Route(f"/{base}{sessions.COOKIE_ROUTE}" if base else sessions.COOKIE_ROUTE, session_cookie,
                 methods=["POST", "DELETE"])
