"""The templates, read once into memory: the email's and the site's.

A command reads each template file once, when it builds its context
(:mod:`pipeline.context`); rendering then fills them from memory and never
opens a file. Compiled templates stay in their Jinja environment for the
rest of the command, and nothing is cached on disk.

    templates/*.j2 (or the packaged copy) ─ load_email_templates ─▶ Templates
        sources by name, their digest (part of every slot nonce), the
        unknown MJML elements of the email template, a Jinja environment
        (email_environment: also the one the service's confirm and welcome
        emails are filled in, pipeline/mailtexts.py)
    templates/web/*.j2, then the packaged ones ─ load_web_templates ─▶ WebTemplates
        a Jinja environment (the newsletter's templates win), static/* by public path

A folder's templates are its ``*.j2`` files, in subfolders too: those are
the names a template can include, import or extend. An edited template is
picked up by the next command, which builds a fresh context.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from pipeline.config import Settings
from pipeline.errors import TemplateError
from pipeline.feed_filters import FILTERS
from pipeline.issue import Finding
from pipeline.mjml_elements import unknown_elements
from pipeline.plaintext import underline
from subscribers.template_cache import BytecodeCache

EMAIL_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
WEB_TEMPLATES = "web"
PACKAGED_TEMPLATES = Path(__file__).parent / "_templates"
_REPOSITORY_TEMPLATES = Path(__file__).parent.parent / "templates"


class MemoryLoader(jinja2.BaseLoader):
    """Templates by name from sources read beforehand; each keeps the file
    it was read from, so Jinja's errors still name the file."""

    def __init__(self, sources: Mapping[str, tuple[str, str]]) -> None:
        self.sources = dict(sources)

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        try:
            source, filename = self.sources[template]
        except KeyError:
            raise jinja2.TemplateNotFound(template) from None
        return source, filename, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.sources)


def read_sources(folder: Path, *, nested: bool = True) -> dict[str, tuple[str, str]]:
    """Every ``*.j2`` file under ``folder`` (with ``nested=False``, directly
    in it): name (its path in ``folder``, with ``/``) to its text and file.
    Not UTF-8 is a TemplateError."""
    sources: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.rglob("*.j2") if nested else folder.glob("*.j2")):
        if not path.is_file():
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise TemplateError(path, None, f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TemplateError(path, None, "not valid UTF-8 text") from None
        sources[path.relative_to(folder).as_posix()] = (text, str(path))
    return sources


CACHE = Path(".cache") / "templates"
"""Where, under the newsletter's root, compiled templates are kept between
commands (keyed by each template's source, so an edit is never stale)."""


def jinja_environment(
    loader: jinja2.BaseLoader,
    autoescape: bool | Callable[[str | None], bool],
    filters: Mapping[str, Callable[..., Any]],
    cache: Path | None = None,
) -> jinja2.Environment:
    """The Jinja environment every template here is filled in: undefined
    values are errors, block tags leave no blank lines, a template's final
    newline is kept. Compiled templates are kept in the environment, and
    with ``cache`` (a folder) between commands too."""
    env = jinja2.Environment(
        loader=loader,
        autoescape=autoescape,  # noqa: S701 - True or select_autoescape, by each caller
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=BytecodeCache(cache) if cache is not None else None,
    )
    env.filters.update(filters)
    return env


def compile_all(env: jinja2.Environment, skip: str | None = None) -> None:
    """Compile every template now, while files may be read (the bytecode
    cache), so that filling them in later reads nothing. One that does not
    compile is left for filling it in to report, at its file and line.
    Names starting with ``skip`` are left to be compiled if ever used."""
    for name in env.list_templates():
        if skip is not None and name.startswith(skip):
            continue
        try:
            env.get_template(name)
        except jinja2.TemplateError:
            continue


@contextmanager
def template_errors(folder: Path, name: str) -> Iterator[None]:
    """Jinja's errors while rendering ``name`` as one-line TemplateErrors
    naming the template file (in ``folder``) and, where Jinja knows it, the line."""
    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or str(folder / name)
        raise TemplateError(where, exc.lineno, exc.message or "syntax error") from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(folder / str(exc.name), None, "template not found") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(folder / name, None, exc.message or "undefined value") from None


# ---------------------------------------------------------------------------
# The email templates
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Templates:
    """The email templates as loaded: their Jinja environment and a digest of
    their sources (part of every slot nonce)."""

    folder: Path
    env: jinja2.Environment
    digest: bytes
    unknown_mjml: tuple[Finding, ...] = ()
    """A tag naming no MJML element in the email template (or one it
    includes), which MRML would pass through silently; each is an error."""


def templates_dir(settings: Settings) -> Path:
    """The newsletter's templates/, or the copy shipped with the package."""
    if (settings.templates_dir / EMAIL_TEMPLATE).is_file():
        return settings.templates_dir
    for fallback in (PACKAGED_TEMPLATES, _REPOSITORY_TEMPLATES):
        if (fallback / EMAIL_TEMPLATE).is_file():
            return fallback
    raise TemplateError(settings.templates_dir / EMAIL_TEMPLATE, None, "template not found")


def load_email_templates(settings: Settings) -> Templates:
    """Read the email templates (see :func:`templates_dir`) into memory."""
    folder = templates_dir(settings)
    sources = read_sources(folder)
    env = email_environment(sources, settings)
    digest = hashlib.sha256()
    for name, (text, _) in sources.items():
        # Names too: moving text from one template into the next is a change.
        digest.update(name.encode() + b"\0" + text.encode("utf-8"))
    return Templates(folder, env, digest.digest(), _unknown_mjml(env, folder))


def email_environment(
    sources: Mapping[str, tuple[str, str]], settings: Settings
) -> jinja2.Environment:
    """The Jinja environment of email templates (an issue's, the service's
    confirm and welcome), every one compiled: all autoescaped but the
    plain-text parts (``*.txt.j2``)."""
    env = jinja_environment(
        MemoryLoader(sources),
        jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2", "xml.j2"),
            disabled_extensions=("txt.j2",),
            default_for_string=True,
            default=True,
        ),
        {"underline": underline},
        settings.root / CACHE,
    )
    # templates/web/ is the site's (load_web_templates): compiled here, without
    # the site's filters, its feeds would fail, uncached, on every command.
    compile_all(env, skip=f"{WEB_TEMPLATES}/")
    return env


_NAMES_ANOTHER = re.compile(r"\{%[-+]?\s*(?:extends|include|import|from)\b")
"""A tag that names another template (Jinja's default delimiters, as here)."""


def _compiles(env: jinja2.Environment, name: str) -> bool:
    try:
        env.get_template(name)  # compiled already, by compile_all
    except jinja2.TemplateError:
        return False
    return True


def _unknown_mjml(env: jinja2.Environment, folder: Path) -> tuple[Finding, ...]:
    """The unknown MJML elements of the email template and of every template
    it includes, imports or extends, each at its file and line."""
    loader = env.loader
    assert loader is not None
    found: list[Finding] = []
    pending, seen = [EMAIL_TEMPLATE], set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        try:
            source, filename, _ = loader.get_source(env, name)
            # Parsing the email template takes longer than the rest of this: a
            # template that compiled (so parses) and has no tag naming another
            # refers to none.
            if _NAMES_ANOTHER.search(source) or not _compiles(env, name):
                from jinja2 import meta  # only for a template that names another

                names = meta.find_referenced_templates(env.parse(source))
            else:
                names = iter(())
        except jinja2.TemplateError:
            continue  # rendering reports it, located
        path = Path(filename) if filename else folder / name
        found.extend(Finding(path, line, "error", text) for line, text in unknown_elements(source))
        pending.extend(other for other in names if other)
    return tuple(found)


# ---------------------------------------------------------------------------
# The site's templates
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebTemplates:
    """The site's templates as loaded, and the static files beside them."""

    env: jinja2.Environment
    static: Mapping[str, Path] = field(default_factory=dict)
    """templates/web/static/* by public path under static/; the newsletter's
    own files win over the packaged ones."""


def web_template_dirs(settings: Settings) -> list[Path]:
    """templates/web/ of the newsletter, then the copy shipped with the package:
    an editor may override any one web template and keep the others."""
    candidates = [
        settings.templates_dir / WEB_TEMPLATES,
        PACKAGED_TEMPLATES / WEB_TEMPLATES,
        _REPOSITORY_TEMPLATES / WEB_TEMPLATES,
    ]
    folders: list[Path] = []
    for folder in candidates:
        if folder.is_dir() and folder.resolve() not in {f.resolve() for f in folders}:
            folders.append(folder)
    if not folders:
        raise TemplateError(candidates[0], None, "web templates not found")
    return folders


def load_web_templates(settings: Settings) -> WebTemplates:
    """Read the site's templates into memory and list its static files."""
    folders = web_template_dirs(settings)
    sources: dict[str, tuple[str, str]] = {}
    static: dict[str, Path] = {}
    for folder in folders:
        for name, source in read_sources(folder).items():
            sources.setdefault(name, source)
        static_folder = folder / "static"
        if not static_folder.is_dir():
            continue
        for path in sorted(static_folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                static.setdefault("static/" + path.relative_to(static_folder).as_posix(), path)
    env = jinja_environment(
        MemoryLoader(sources), autoescape=True, filters=FILTERS, cache=settings.root / CACHE
    )
    compile_all(env)
    return WebTemplates(env, static)
