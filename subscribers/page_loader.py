"""The reader-facing pages' templates: where each is found, and filling one in.

A page is ``pages/NAME.html.j2`` (:data:`PAGES`), which extends
``pages/layout.html.j2``, which extends ``base.html.j2``: the site's layout.
Each of those names is looked up in the folders :class:`PageTemplates` is
given (`publish serve` gives the newsletter's templates/web, then the site's
shipped one), then in this package's own (:data:`BUILT_IN`): the built-in
pages, and a layout for when no site's is given::

    PageTemplates((templates/web, ...)).fill("confirm", values) ─▶ HTML
        pages/confirm.html.j2   the editor's, else the built-in one
        pages/layout.html.j2    the editor's, else the built-in one
        base.html.j2            the site's layout, else the built-in one

The two forms the pages show (:func:`partials`: form.html, reason.html) are
the package's own, as the site and `publish embed` print them too; the
signup form is filled here (:func:`signup_form_html`), so that an issue's
web page gets it without the service's pages or the store's records. Jinja's
errors are located at their template's file and line (:meth:`PageTemplates.located`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2 import nodes

from subscribers.addresses import MAX_EMAIL
from subscribers.template_cache import BytecodeCache
from subscribers.text import MAX_NAME

BUILT_IN = Path(__file__).resolve().parent / "templates" / "web"
"""The built-in pages (pages/), their fallback layout and the forms."""
PAGES = (
    "subscribe",
    "check-inbox",
    "confirm",
    "confirmed",
    "unsubscribe",
    "unsubscribed",
    "reason",
    "error",
)
"""Every page the service answers with, by name."""


def page_template(page: str) -> str:
    """``pages/NAME.html.j2``: the template of ``page``."""
    return f"pages/{page}.html.j2"


@cache
def partials() -> jinja2.Environment:
    """The environment of the forms' templates (form.html, reason.html),
    autoescaped, undefined values errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(BUILT_IN),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def signup_form_html(
    action_url: str,
    consent_text: str,
    *,
    email: str = "",
    name: str = "",
    error: str = "",
    source: str = "",
) -> str:
    """The signup form: email, optional first name, a honeypot and the consent
    wording, labelled for screen readers; with ``source``, the page it is on,
    in a hidden field. Everything in it is escaped."""
    return str(
        partials()
        .get_template("form.html")
        .render(
            action=action_url,
            consent_text=consent_text,
            email=email,
            name=name,
            error=error,
            source=source,
            max_email=MAX_EMAIL,
            max_name=MAX_NAME,
        )
    )


def _environment(folders: Sequence[Path], compiled: Path | None) -> jinja2.Environment:
    """Pages found in ``folders``, in order: autoescaped, undefined values
    errors, block tags leaving no blank lines (as the site's templates);
    compiled ones kept in ``compiled`` (a folder) between processes."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in folders]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # read once; the service is started again for an edit
        bytecode_cache=BytecodeCache(compiled) if compiled is not None else None,
    )


@dataclass(frozen=True)
class Chained:
    """One template of a page's chain of ``{% extends %}``."""

    name: str
    path: Path
    built_in: bool


class PageTemplates:
    """The pages' templates in ``folders`` (searched first), then the built-in ones."""

    def __init__(self, folders: Sequence[Path] = (), compiled: Path | None = None) -> None:
        self.folders = tuple(Path(folder) for folder in folders)
        self.env = _environment([*self.folders, BUILT_IN], compiled)
        self.built_in = _environment([BUILT_IN], compiled) if self.folders else self.env

    def fill(self, page: str, values: Mapping[str, Any]) -> str:
        """``page`` filled with ``values``; Jinja's errors as they come."""
        return self.env.get_template(page_template(page)).render(values)

    def fill_built_in(self, page: str, values: Mapping[str, Any]) -> str:
        """The built-in ``page`` in the built-in layout, filled with ``values``."""
        return self.built_in.get_template(page_template(page)).render(values)

    def file_of(self, name: str) -> Path:
        """The file template ``name`` is read from: the first folder's that has it."""
        for folder in (*self.folders, BUILT_IN):
            if (folder / name).is_file():
                return folder / name
        return BUILT_IN / name

    def chain(self, page: str) -> list[Chained]:
        """``page``'s template, then the one it extends, and so on: the last
        one writes the page's outer HTML (its footer, say)."""
        found: list[Chained] = []
        name: str | None = page_template(page)
        while name is not None and name not in {c.name for c in found}:
            path = self.file_of(name)
            found.append(Chained(name, path, path.is_relative_to(BUILT_IN)))
            name = _extended(self.env, name)
        return found

    def located(
        self, exc: Exception, page: str, *, detail: bool = True
    ) -> tuple[Path, int | None, str]:
        """Where ``exc``, raised filling ``page``, is: a file, its line when
        known, and what is wrong, in one line. Without ``detail``, an error
        of Python's own (a division by zero, say) is named by its type
        alone: its message may hold the values the page was filled with."""
        fallback = self.file_of(page_template(page))
        if isinstance(exc, jinja2.TemplateError):
            message = exc.message or type(exc).__name__
        else:
            message = f"{type(exc).__name__}: {exc}" if detail else type(exc).__name__
        message = " ".join(message.split())
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return (Path(exc.filename) if exc.filename else fallback), exc.lineno, message
        if isinstance(exc, jinja2.TemplateNotFound):
            message = f"template {exc.name!r} not found"
        frame = _template_frame(exc.__traceback__)
        return (*frame, message) if frame else (fallback, None, message)


def _extended(env: jinja2.Environment, name: str) -> str | None:
    """The template ``name`` extends, when it names one; None otherwise or
    when it cannot be read."""
    try:
        source = env.loader.get_source(env, name)[0] if env.loader else ""
        tree = env.parse(source)
    except jinja2.TemplateError:
        return None
    extends = tree.find(nodes.Extends)
    if extends is not None and isinstance(extends.template, nodes.Const):
        return str(extends.template.value)
    return None


def _template_frame(traceback: TracebackType | None) -> tuple[Path, int] | None:
    """The innermost frame of ``traceback`` in a template file, and its line:
    Jinja gives a template's frames the template's file and line."""
    found = None
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (Path(filename), traceback.tb_lineno)
        traceback = traceback.tb_next
    return found
