"""Loading the templates for a command: compiled once, then read from the
bytecode cache; the email template and the ones it includes checked for
unknown MJML elements."""

from __future__ import annotations

import jinja2

from pipeline.context import Context


def test_the_second_command_compiles_no_template(settings, monkeypatch):
    Context.load(settings)  # compiles, and keeps them in .cache/templates/
    compiled: list[str | None] = []
    real = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):  # type: ignore[no-untyped-def]
        compiled.append(name)
        return real(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    Context.load(settings)
    # Not even the site's feeds, which the email templates' environment
    # cannot compile (it has not the site's filters), so never cached.
    assert compiled == []


def test_an_unknown_element_in_an_included_template_is_found_there(newsletter, settings):
    part = newsletter / "templates" / "parts" / "closing.mjml.j2"
    part.parent.mkdir()
    part.write_text("<mj-text>Take care,</mj-text>\n<mj-txt>Dana</mj-txt>\n")
    email = newsletter / "templates" / "email.mjml.j2"
    email.write_text(
        email.read_text().replace("</mj-column>", '{% include "parts/closing.mjml.j2" %}\n</mj-column>', 1)
    )

    found = Context.load(settings).templates.unknown_mjml

    assert [(f.path, f.line) for f in found] == [(part, 2), (part, 2)]
    assert found[0].message.startswith("unknown MJML element <mj-txt>")
