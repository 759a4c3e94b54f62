"""`publish deploy` against moto's S3 server over real HTTP on loopback."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import with_overrides
from pipeline.deploy import (
    LONG_CACHE,
    SHORT_CACHE,
    LocalFile,
    RemoteObject,
    deploy_site,
    normalized_prefix,
    plan_deploy,
)
from pipeline.errors import ConfigError, SiteError

BUCKET = "painfree-site"

SITE = {
    "index.html": b"<!doctype html><title>Archive</title>",
    "404.html": b"<!doctype html><title>Not found</title>",
    "feed.xml": b"<?xml version='1.0'?><rss version='2.0'/>",
    "sitemap.xml": b"<?xml version='1.0'?><urlset/>",
    "feed.atom": b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'/>",
    "issues/calf-stretch/index.html": b"<!doctype html><title>Calf</title>",
    "subscribe/index.html": b"<!doctype html><title>Subscribe</title>",
    "media/images/calf-stretch.png": b"\x89PNG\r\n\x1a\nnot really a picture",
    "static/logo.png": b"\x89PNG\r\n\x1a\nlogo",
}


@pytest.fixture
def site(settings, aws):
    public = settings.public_dir
    for path, data in SITE.items():
        (public / path).parent.mkdir(parents=True, exist_ok=True)
        (public / path).write_bytes(data)
    (public / ".publish-site.json").write_text("{}")
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return with_overrides(settings, s3_bucket=BUCKET)


def objects(aws, prefix=""):
    s3 = aws.client("s3")
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: item for item in listing}


def test_first_deploy_uploads_everything_but_hidden_files_with_the_right_headers(site, aws):
    report = deploy_site(site)

    assert sorted(report.uploaded) == sorted(SITE)
    assert report.unchanged == () and report.deleted == ()
    assert set(objects(aws)) == set(SITE)  # the build manifest stays home
    s3 = aws.client("s3")
    expected = {
        "index.html": ("text/html; charset=utf-8", SHORT_CACHE),
        "feed.xml": ("application/rss+xml; charset=utf-8", SHORT_CACHE),
        "sitemap.xml": ("application/xml; charset=utf-8", SHORT_CACHE),
        "feed.atom": ("application/atom+xml; charset=utf-8", SHORT_CACHE),
        "issues/calf-stretch/index.html": ("text/html; charset=utf-8", SHORT_CACHE),
        "media/images/calf-stretch.png": ("image/png", LONG_CACHE),
        "static/logo.png": ("image/png", LONG_CACHE),
    }
    for key, (content_type, cache_control) in expected.items():
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == content_type, key
        assert head["CacheControl"] == cache_control, key
        assert head["Metadata"]["sha256"] == hashlib.sha256(SITE[key]).hexdigest()
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == SITE[key]


def test_a_second_deploy_uploads_nothing(site, aws):
    deploy_site(site)
    before = {key: item["LastModified"] for key, item in objects(aws).items()}

    again = deploy_site(site)

    assert again.uploaded == ()
    assert sorted(again.unchanged) == sorted(SITE)
    assert {key: item["LastModified"] for key, item in objects(aws).items()} == before


def test_only_changed_files_go_up_and_delete_removes_what_is_gone(site, aws):
    deploy_site(site)
    public = site.public_dir
    (public / "index.html").write_bytes(b"<!doctype html><title>Archive, updated</title>")
    (public / "issues" / "calf-stretch" / "index.html").unlink()
    aws.client("s3").put_object(Bucket=BUCKET, Key="old/page.html", Body=b"stale")

    kept = deploy_site(site)
    assert kept.uploaded == ("index.html",)
    assert kept.deleted == ()
    assert "issues/calf-stretch/index.html" in objects(aws)

    dry = deploy_site(site, delete=True, dry_run=True)
    assert dry.dry_run
    assert sorted(dry.deleted) == ["issues/calf-stretch/index.html", "old/page.html"]
    assert "old/page.html" in objects(aws)  # a dry run changes nothing

    removed = deploy_site(site, delete=True)
    assert sorted(removed.deleted) == ["issues/calf-stretch/index.html", "old/page.html"]
    remaining = objects(aws)
    assert "issues/calf-stretch/index.html" not in remaining
    assert "old/page.html" not in remaining
    assert aws.client("s3").get_object(Bucket=BUCKET, Key="index.html")["Body"].read() == (
        b"<!doctype html><title>Archive, updated</title>"
    )


def test_dry_run_on_a_fresh_bucket_uploads_nothing(site, aws):
    report = deploy_site(site, dry_run=True)
    assert sorted(report.uploaded) == sorted(SITE)
    assert objects(aws) == {}


def test_a_prefix_keeps_the_site_in_its_folder_and_delete_stays_inside_it(site, aws):
    prefixed = with_overrides(site, s3_prefix="/newsletter/")
    aws.client("s3").put_object(Bucket=BUCKET, Key="blog/index.html", Body=b"the blog")
    aws.client("s3").put_object(Bucket=BUCKET, Key="newsletter/gone.html", Body=b"old")

    report = deploy_site(prefixed, delete=True)

    assert report.target == f"s3://{BUCKET}/newsletter/"
    assert report.deleted == ("gone.html",)
    keys = set(objects(aws))
    assert {f"newsletter/{path}" for path in SITE} <= keys
    assert "blog/index.html" in keys
    assert "newsletter/gone.html" not in keys


def test_objects_without_an_md5_etag_are_compared_by_their_sha256(site, aws):
    """A multipart upload's ETag is no MD5; the sha256 metadata decides."""
    s3 = aws.client("s3")
    data = SITE["media/images/calf-stretch.png"]
    upload = s3.create_multipart_upload(
        Bucket=BUCKET,
        Key="media/images/calf-stretch.png",
        Metadata={"sha256": hashlib.sha256(data).hexdigest()},
    )
    part = s3.upload_part(
        Bucket=BUCKET,
        Key="media/images/calf-stretch.png",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=data,
    )
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="media/images/calf-stretch.png",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert "-" in objects(aws)["media/images/calf-stretch.png"]["ETag"]

    report = deploy_site(site)

    assert "media/images/calf-stretch.png" in report.unchanged
    assert "media/images/calf-stretch.png" not in report.uploaded


def test_upload_order_puts_media_first_and_the_archive_and_feeds_last():
    files = [
        LocalFile(path, None, "0" * 32, "")  # type: ignore[arg-type]
        for path in ("feed.xml", "index.html", "issues/a/index.html", "media/a.png", "static/x.css")
    ]
    plan = plan_deploy(files, {}, bucket=BUCKET, prefix="", delete=False)
    assert [item.path for item in plan.upload] == [
        "media/a.png",
        "static/x.css",
        "issues/a/index.html",
        "feed.xml",
        "index.html",
    ]


def test_plan_compares_md5_etags_and_only_deletes_when_asked():
    local = [LocalFile("a.html", None, "a" * 32, "")]  # type: ignore[arg-type]
    remote = {
        "a.html": RemoteObject(f'"{"a" * 32}"'),
        "b.html": RemoteObject(f'"{"b" * 32}"'),
    }
    keep = plan_deploy(local, remote, bucket=BUCKET, prefix="", delete=False)
    assert keep.unchanged == ("a.html",) and keep.upload == () and keep.delete == ()
    prune = plan_deploy(local, remote, bucket=BUCKET, prefix="", delete=True)
    assert prune.delete == ("b.html",)


def test_prefix_normalization():
    assert normalized_prefix("") == ""
    assert normalized_prefix("/archive/") == "archive/"
    assert normalized_prefix("a//b") == "a/b/"
    with pytest.raises(ConfigError, match=r"deploy\.s3_prefix"):
        normalized_prefix("../elsewhere")


def test_no_bucket_setting_is_a_one_line_error(settings):
    with pytest.raises(ConfigError, match=r"^deploy\.s3_bucket: not set"):
        deploy_site(settings)


def test_a_missing_bucket_is_a_one_line_error(site, aws):
    with pytest.raises(SiteError, match=r"^s3://no-such-bucket/: NoSuchBucket"):
        deploy_site(with_overrides(site, s3_bucket="no-such-bucket"))


def test_nothing_to_deploy_is_a_one_line_error(settings, aws):
    with pytest.raises(SiteError, match=r"no site to deploy; run `publish site` first"):
        deploy_site(with_overrides(settings, s3_bucket=BUCKET))


def test_cli_deploy_reports_what_changed(site, aws, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_S3_BUCKET", BUCKET)
    runner = CliRunner()

    first = runner.invoke(app, ["deploy"])
    assert first.exit_code == 0, first.output
    assert "uploaded index.html" in first.stdout.splitlines()
    assert first.stdout.splitlines()[-1] == (
        f"s3://{BUCKET}/: {len(SITE)} uploaded, 0 unchanged, 0 deleted"
    )

    (site.public_dir / "404.html").unlink()
    dry = runner.invoke(app, ["deploy", "--delete", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 404.html" in dry.stdout.splitlines()
    assert dry.stdout.splitlines()[-1] == (
        f"s3://{BUCKET}/: 0 would be uploaded, {len(SITE) - 1} unchanged, 1 would be deleted"
    )
    assert "404.html" in objects(aws)


def test_cli_deploy_without_a_bucket_fails_cleanly(newsletter):
    result = CliRunner().invoke(app, ["deploy"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: deploy.s3_bucket: not set")
