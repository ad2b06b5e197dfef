"""The browser console: server-rendered pages (Jinja) with small, dependency-free JavaScript and CSS.

``create_app`` registers :func:`template_config`, :func:`static_files_router`
and :class:`~handoffs.web.controller.ConsoleController`.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from handoffs.web.filters import register_filters

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    # StrictUndefined: a misspelt variable fails the page (and its test) instead of rendering blank.
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    register_filters(env)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def static_files_router() -> Router:
    """``/static/...``: public (the sign-in page needs its script), revalidated on every load."""
    return create_static_files_router(
        path="/static",
        directories=[STATIC],
        name="static",
        cache_control=CacheControlHeader(no_cache=True),
        opt={"exclude_from_auth": True},
        include_in_schema=False,
    )
