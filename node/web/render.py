"""Rendering pages: Jinja2 templates shipped in the package, autoescaped, in the reader's language.

The privacy centre speaks zh-CN by default and English on request (``?lang=en``, remembered in a
cookie); the console speaks English. A refusal by a service (consent, four eyes, a bad filter) is
shown on the page it came from, with the same words the API would answer; anything else is a bug
and goes to the log, never to the page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from node.api.problems import status_of
from node.web.messages import LANGUAGES, text
from node.web.sessions import Session

log = logging.getLogger("alliance.node")
LANG_COOKIE = "alliance_lang"
templates = Jinja2Templates(directory=str(files("node.web").joinpath("templates")))


def language(request: Request, default: str = "zh-CN") -> str:
    """The reader's language: ``?lang=``, else their cookie, else ``default``."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGUAGES else default


def page(
    request: Request,
    template: str,
    session: Session | None = None,
    status_code: int = 200,
    lang: str = "en",
    **context: Any,
) -> HTMLResponse:
    """The template rendered for ``session``'s reader, with its CSRF token and any messages waiting."""
    messages = list(session.flash) if session else []
    if session:
        session.flash.clear()
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrf": session.csrf if session else "",
            "messages": messages,
            "lang": lang,
            "t": lambda key, **kw: text(lang, key, **kw),
            **context,
        },
        status_code=status_code,
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True)
    return response


def back(url: str) -> RedirectResponse:
    """After a form: see the page again (POST, redirect, GET), so a reload never repeats the action."""
    return RedirectResponse(url, status_code=303)


#: What :func:`attempt` returns when the service refused.
FAILED: Any = object()


def refusal(exc: Exception) -> str | None:
    """What to tell the reader when a service refused (``None``: not a refusal, a bug to raise).

    Besides the API's refusals, a ``ValueError`` or ``LookupError`` is one here: a page passes the
    services what a person typed, where the API would have refused it in validation first.
    """
    if status_of(exc) >= 500 and not isinstance(exc, ValueError | LookupError):
        return None
    return str(exc) or type(exc).__name__


def attempt(session: Session, action: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``action``; a service's refusal is kept as a message for the next page and :data:`FAILED` returned."""
    try:
        return action(*args, **kwargs)
    except Exception as exc:
        message = refusal(exc)
        if message is None:
            raise
        session.say(message)
        return FAILED


def query_dict(request: Request, keys: tuple[str, ...]) -> Mapping[str, str]:
    """The non-empty query parameters among ``keys``."""
    return {k: v for k in keys if (v := request.query_params.get(k, "").strip())}
