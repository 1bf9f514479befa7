"""The landing page and the API docs (Swagger UI 5 from the ``fastapi-offline`` package, no CDN)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from node.web.guard import NodeDep
from node.web.render import page

router = APIRouter(include_in_schema=False)


def swagger_dir() -> str:
    """Where the installed Swagger UI's files are (served under ``/static/swagger``)."""
    return str(files("fastapi_offline").joinpath("static"))


@router.get("/", response_class=HTMLResponse)
def landing(request: Request, node: NodeDep) -> HTMLResponse:
    """What this node is, and the way into its three areas and its API docs."""
    return page(
        request,
        "landing.html",
        brand=node.settings.display_name or node.settings.node_id,
        node_id=node.settings.node_id,
    )


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, its script and styles from the package."""
    return page(request, "docs.html")
