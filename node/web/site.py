"""The whole site of a node: the API (:func:`node.api.app.create_app`) and, beside it, the pages.

What ``alliance-node serve`` runs. Everything a page needs, stylesheet and Swagger UI included, is
served from the package: a node hosted where a CDN cannot be reached still renders every page.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from node.api.app import create_app
from node.runtime import Node
from node.web import console, dashboard, docs, governance, privacy
from node.web.guard import FormRefused, SecurityHeaders, SignInNeeded
from node.web.render import language, page
from node.web.sessions import SessionStore


def create_site(node: Node, recovery: bool = False, jobs: bool = False) -> FastAPI:
    """The node's API and pages in one app (``recovery`` and ``jobs`` as in :func:`node.api.app.create_app`)."""
    app = create_app(node, recovery=recovery, jobs=jobs)
    app.state.sessions = SessionStore(node.settings.session_minutes * 60)
    for router in (docs.router, privacy.router, console.router, governance.router, dashboard.router):
        app.include_router(router)
    # the longer prefix first: a mount takes every path under it
    app.mount("/static/swagger", StaticFiles(directory=docs.swagger_dir()), name="swagger")
    app.mount("/static", StaticFiles(directory=str(files("node.web").joinpath("static"))), name="static")
    app.add_exception_handler(SignInNeeded, _sign_in_needed)  # type: ignore[arg-type]
    app.add_exception_handler(FormRefused, _form_refused)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)
    return app


def _sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
    """No session, or one of a role the page is not for: the area's way in (403 for the wrong role)."""
    if exc.area == "/console":
        if exc.role_refused is not None:
            return page(request, "console/refused.html", status_code=403, role=exc.role_refused.value)
        if request.method == "GET":
            return RedirectResponse(f"/console/sign-in?next={request.url.path}", status_code=303)
        return RedirectResponse("/console/sign-in", status_code=303)
    return page(request, "privacy/link_needed.html", status_code=401, lang=language(request))


def _form_refused(request: Request, exc: FormRefused) -> HTMLResponse:
    return page(request, "form_refused.html", status_code=403, reason=str(exc))
