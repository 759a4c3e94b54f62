"""`publish new`, `publish check`, `publish preview` through Typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_new_writes_a_dated_skeleton_and_never_overwrites(newsletter):
    result = run("new", "Hips that ache on the stairs", "--date", "2027-01-05")
    assert result.exit_code == 0, result.output
    path = newsletter / "issues" / "2027-01-05-hips-that-ache-on-the-stairs.md"
    assert result.stdout.strip() == "wrote issues/2027-01-05-hips-that-ache-on-the-stairs.md"
    text = path.read_text()
    for key in ("title", "date", "subject", "preheader", "slug", "author", "tags", "publish_at"):
        assert f"\n{key}:" in text
    check = run("check", str(path))
    assert check.exit_code == 0, check.output  # warnings only (no preheader yet)
    assert ": warning: no preheader" in check.stdout

    path.write_text(text + "edited\n")
    again = run("new", "Hips that ache on the stairs", "--date", "2027-01-05")
    assert again.exit_code == 1
    assert again.stderr.strip() == f"error: {path}: already exists; choose another title or --date"
    assert path.read_text().endswith("edited\n")


def test_new_with_a_title_that_needs_quoting(newsletter):
    result = run("new", 'Knees: "why" #1', "--date", "2027-01-05")
    assert result.exit_code == 0, result.output
    check = run("check", "knees-why-1")
    assert check.exit_code == 0, check.output


def test_new_rejects_a_bad_date(newsletter):
    result = run("new", "Hips", "--date", "next week")
    assert result.exit_code == 1
    assert result.stderr == "error: --date: 'next week' is not a date like 2026-12-01\n"
    assert not list((newsletter / "issues").glob("*hips*"))


def test_check_reports_findings_a_line_each_and_fails_on_errors(newsletter):
    bad = newsletter / "issues" / "2026-11-20-bad.md"
    bad.write_text("---\ntitle: Bad\ndate: 2026-11-20\n---\nAsk on [the forum]().\n\n![](x.png)\n")
    result = run("check", str(bad), "calf-stretch")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    bad = bad.relative_to(newsletter)
    assert f"{bad}:2: warning: no preheader: inboxes will preview the first words of the email instead" in lines
    assert f"{bad}:5: error: link [the forum] has an empty target" in lines
    assert f"{bad}:7: error: image 'x.png' has no alt text" in lines
    assert f"{bad}:7: error: image 'x.png' not found next to the issue or in images/" in lines
    assert len(lines) == 4
    assert result.stderr == "2 issues checked: 3 errors, 1 warning\n"


def test_check_without_arguments_checks_every_issue(newsletter):
    result = run("check")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.startswith("2 issues checked: 0 errors")


def test_check_an_unknown_issue_is_one_line(newsletter):
    result = run("check", "nope")
    assert result.exit_code == 1
    assert result.stderr == "error: nope: no such issue file\n"


def test_preview_writes_html_and_text(newsletter, tmp_path):
    out = tmp_path / "out"
    result = run("preview", "calf-stretch", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out / "calf-stretch.html"), str(out / "calf-stretch.txt")]
    html = (out / "calf-stretch.html").read_text()
    text = (out / "calf-stretch.txt").read_text()
    assert "Hi Alex," in html and "Hi Alex," in text
    assert "pflslot" not in html + text
    # The preview shows the issue's own pictures from disk.
    image = (newsletter / "issues" / "images" / "calf-stretch.png").as_uri()
    assert f'src="{image}"' in html


def test_preview_defaults_to_the_preview_folder(newsletter):
    result = run("preview", "desk-wrist-routine")
    assert result.exit_code == 0, result.output
    assert (newsletter / "preview" / "desk-wrist-routine.html").is_file()


def test_preview_of_a_broken_issue_writes_nothing(newsletter, tmp_path):
    bad = newsletter / "issues" / "2026-11-20-bad.md"
    bad.write_text("---\ntitle: Bad\ndate: 2026-11-20\n---\n![A picture](missing.png)\n")
    out = tmp_path / "out"
    result = run("preview", str(bad), "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr == f"error: {bad}:5: image 'missing.png' not found\n"
    assert "Traceback" not in result.output
    assert not out.exists()


def test_broken_template_is_one_line(newsletter, tmp_path):
    (newsletter / "templates" / "email.mjml.j2").write_text("<mjml>{% for %}</mjml>")
    result = run("preview", "calf-stretch", "-o", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {newsletter / 'templates' / 'email.mjml.j2'}:1: ")
    assert result.stderr.count("\n") == 1


def test_root_option_and_missing_settings(newsletter, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no newsletter.toml in ")
    assert run("--root", str(newsletter), "check").exit_code == 0


def test_invalid_setting_from_environment_is_one_line(newsletter, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SITE_URL", "painfreeliving.example.com")
    result = run("check")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: newsletter.site_url: 'painfreeliving.example.com' is not an absolute http(s) URL\n"
    )


def test_help_starts_without_heavy_imports():
    import subprocess
    import sys

    code = (
        "import sys; from pipeline.cli import app; "
        "heavy = [m for m in ('boto3', 'sqlalchemy', 'fastapi', 'alembic', 'feedparser', 'uvicorn') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_user_errors_never_show_a_traceback(newsletter):
    (newsletter / "newsletter.toml").write_text("[newsletter\n")
    result = run("check")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {Path(newsletter, 'newsletter.toml')}: ")


def own_issues(newsletter: Path, *names: str) -> list[Path]:
    """issues/ holding only clean issues of this test's own, one per name."""
    for old in (newsletter / "issues").glob("*.md"):
        old.unlink()
    paths = []
    for name in names:
        path = newsletter / "issues" / name
        path.write_text(
            "---\ntitle: Elbows\ndate: 2027-01-05\n"
            'preheader: "Tennis elbow without the tennis: three moves for sore forearms."\n'
            "---\nA note.\n"
        )
        paths.append(path)
    return paths


NUL_ISSUE = (
    "---\ntitle: Calves\ndate: 2026-11-20\n"
    "preheader: A gentle calf stretch for anyone who stands at work all day long.\n"
    "publish_at: 2026-11-20T07:00:00+00:00\n---\n"
    "A stretch.\n\n![A stretch](images/calf%00stretch.png)\n"
)


def test_an_impossible_image_path_is_one_line_everywhere(newsletter, tmp_path):
    own_issues(newsletter, "2027-01-05-elbows.md")
    bad = newsletter / "issues" / "2026-11-20-calves.md"
    bad.write_text(NUL_ISSUE)
    shown = bad.relative_to(newsletter)
    for args in (
        ("check", str(bad)),
        ("preview", str(bad), "-o", str(tmp_path / "out")),
        ("issue", str(bad), "--dry-run"),
        ("site",),
    ):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output and "embedded null" not in result.output, args
        lines = result.output.splitlines()
        located = [line for line in lines if f"{shown}:9:" in line or f"{bad}:9:" in line]
        assert len(located) == 1 and "NUL" in located[0], (args, lines)
        assert len(lines) <= 2, (args, lines)  # and at most a summary line


def test_check_reports_a_template_typo_once_for_all_issues(newsletter):
    template = newsletter / "templates" / "email.mjml.j2"
    lines = template.read_text().split("\n")
    line = next(i for i, text in enumerate(lines) if "<mj-column>" in text) + 1
    lines[line - 1] = lines[line - 1].replace("<mj-column>", "<mj-colum>")
    template.write_text("\n".join(lines))
    own_issues(newsletter, "2027-01-05-elbows.md", "2027-01-19-knees.md")
    result = run("check")
    assert result.exit_code == 1
    expected = f"templates/email.mjml.j2:{line}: error: unknown MJML element <mj-colum>"
    matching = [out for out in result.stdout.splitlines() if out.startswith(expected)]
    assert len(matching) == 1, result.stdout
    assert result.stderr == "2 issues checked: 1 error, 0 warnings\n"


def test_preview_refuses_a_template_typo_in_one_line(newsletter, tmp_path):
    template = newsletter / "templates" / "email.mjml.j2"
    template.write_text(template.read_text().replace("<mj-section", "<mj-sektion", 1))
    (path,) = own_issues(newsletter, "2027-01-05-elbows.md")
    result = run("preview", str(path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {template}:")
    assert "unknown MJML element <mj-sektion>" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_check_warns_about_an_undated_issue_file(newsletter):
    own_issues(newsletter, "2027-01-05-knees.md", "elbows.md")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "issues/elbows.md:1: warning: the file name should start with the issue's date: "
        "2027-01-05-elbows.md"
    ]
