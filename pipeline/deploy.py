"""Uploading public/ to Amazon S3: only what changed, with the right headers.

:func:`plan_deploy` compares the local files with the bucket's objects by
content hash: the MD5 an S3 ETag carries for a single-part upload, or the
``sha256`` metadata every upload here sets, for objects whose ETag is not a
plain MD5 (multipart or KMS-encrypted). :func:`deploy_site` then uploads
what differs, media first and the archive and feeds last (a page never
refers to an image that is not there yet), and with ``delete`` removes the
objects under the prefix that public/ no longer has.

boto3 finds the region, credentials and endpoint by its own chain
(``AWS_PROFILE``, ``AWS_ENDPOINT_URL``...). Hidden files (the site's build
manifest among them) are never uploaded.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError, SiteError
from subscribers.aws import aws_problem

log = logging.getLogger(__name__)

SHORT_CACHE = "public, max-age=300"
"""Pages and feeds: readers see a new issue within minutes."""
LONG_CACHE = "public, max-age=2592000"
"""Images and other media: a month; their names rarely change content."""
UPLOAD_WORKERS = 8
DELETE_BATCH = 1000

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/rss+xml; charset=utf-8",
    "sitemap.xml": "application/xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
}
_SHORT_LIVED = (".html", ".xml", ".atom", ".txt", ".json")
_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')


def content_type(path: str) -> str:
    name, suffix = Path(path).name.lower(), Path(path).suffix.lower()
    if name in _CONTENT_TYPES:
        return _CONTENT_TYPES[name]
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def cache_control(path: str) -> str:
    return SHORT_CACHE if Path(path).suffix.lower() in _SHORT_LIVED else LONG_CACHE


@dataclass(frozen=True)
class LocalFile:
    path: str
    """Relative to public/, with forward slashes."""
    source: Path
    md5: str
    sha256: str


@dataclass(frozen=True)
class RemoteObject:
    """An object in the bucket, as listed under its key."""

    etag: str


def object_key(prefix: str, path: str) -> str:
    """The bucket key of a file of public/ (``path``) under ``prefix``."""
    return f"{prefix}{path}"


def s3_url(bucket: str, key: str = "") -> str:
    """``s3://bucket/key``, as messages name a place in the bucket."""
    return f"s3://{bucket}/{key}"


@dataclass(frozen=True)
class DeployPlan:
    bucket: str
    prefix: str
    upload: tuple[LocalFile, ...]
    unchanged: tuple[str, ...]
    delete: tuple[str, ...]
    """Object keys, only filled when deleting was asked for."""

    def key(self, path: str) -> str:
        return object_key(self.prefix, path)


@dataclass(frozen=True)
class DeployReport:
    bucket: str
    prefix: str
    uploaded: tuple[str, ...]
    unchanged: tuple[str, ...]
    deleted: tuple[str, ...]
    dry_run: bool

    @property
    def target(self) -> str:
        return s3_url(self.bucket, self.prefix)


def normalized_prefix(prefix: str) -> str:
    """``archive`` and ``/archive/`` both become ``archive/``; empty stays empty."""
    parts = [part for part in prefix.strip().split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise ConfigError(f"deploy.s3_prefix: {prefix!r} must not contain '.' or '..'")
    return "/".join(parts) + "/" if parts else ""


def local_files(public_dir: Path) -> list[LocalFile]:
    """Every file under public/ except hidden ones, with its hashes."""
    if not public_dir.is_dir():
        raise SiteError(f"{public_dir}: no site to deploy; run `publish site` first")
    found: list[LocalFile] = []
    for path in sorted(public_dir.rglob("*")):
        relative = path.relative_to(public_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        data = path.read_bytes()
        found.append(
            LocalFile(
                path=relative.as_posix(),
                source=path,
                md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    if not found:
        raise SiteError(f"{public_dir}: empty; run `publish site` first")
    return found


def _upload_order(item: LocalFile) -> tuple[int, str]:
    """Media and static files, then issue pages, then the archive and feeds."""
    path = item.path
    if not path.endswith((".html", ".xml", ".atom")):
        return 0, path
    if path.startswith("issues/"):
        return 1, path
    return 2, path


def plan_deploy(
    files: Iterable[LocalFile],
    remote: Mapping[str, RemoteObject],
    *,
    bucket: str,
    prefix: str,
    delete: bool,
    remote_sha256: Callable[[str], str | None] | None = None,
) -> DeployPlan:
    """What to upload, what is already there, and what to delete.

    ``remote_sha256`` answers for objects whose ETag is not an MD5 (it reads
    their metadata); without it such objects are uploaded again.
    """
    upload: list[LocalFile] = []
    unchanged: list[str] = []
    wanted: set[str] = set()
    for item in files:
        key = object_key(prefix, item.path)
        wanted.add(key)
        current = remote.get(key)
        if current is not None:
            md5 = _MD5_ETAG.match(current.etag)
            if md5 and md5.group(1) == item.md5:
                unchanged.append(item.path)
                continue
            if not md5 and remote_sha256 is not None and remote_sha256(key) == item.sha256:
                unchanged.append(item.path)
                continue
        upload.append(item)
    upload.sort(key=_upload_order)
    doomed = sorted(key for key in remote if key not in wanted) if delete else []
    return DeployPlan(bucket, prefix, tuple(upload), tuple(unchanged), tuple(doomed))


def deploy_site(
    settings: Settings,
    *,
    delete: bool = False,
    dry_run: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> DeployReport:
    """Upload public/ to ``settings.s3_bucket`` under ``settings.s3_prefix``.

    ``progress(action, path)`` is called for each upload ("upload") and
    deletion ("delete") as it happens. With ``dry_run`` nothing changes in
    the bucket; the report says what would.
    """
    if not settings.s3_bucket:
        raise ConfigError(
            "deploy.s3_bucket: not set (set it in newsletter.toml or as NEWSLETTER_S3_BUCKET)"
        )
    bucket = settings.s3_bucket
    prefix = normalized_prefix(settings.s3_prefix)
    files = local_files(settings.public_dir)

    import boto3

    client = boto3.client("s3")
    target = s3_url(bucket, prefix)
    try:
        remote = _list_objects(client, bucket, prefix)
        plan = plan_deploy(
            files,
            remote,
            bucket=bucket,
            prefix=prefix,
            delete=delete,
            remote_sha256=lambda key: _metadata_sha256(client, bucket, key),
        )
        if not dry_run:
            _upload(client, plan, progress)
            _delete(client, plan, progress)
    except Exception as exc:
        problem = aws_problem(exc)
        if problem is None:
            raise
        raise SiteError(f"{target}: {problem}") from None

    return DeployReport(
        bucket=bucket,
        prefix=prefix,
        uploaded=tuple(item.path for item in plan.upload),
        unchanged=plan.unchanged,
        deleted=tuple(key[len(prefix) :] for key in plan.delete),
        dry_run=dry_run,
    )


def _list_objects(client: Any, bucket: str, prefix: str) -> dict[str, RemoteObject]:
    found: dict[str, RemoteObject] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            found[item["Key"]] = RemoteObject(str(item.get("ETag", "")))
    return found


def _metadata_sha256(client: Any, bucket: str, key: str) -> str | None:
    head = client.head_object(Bucket=bucket, Key=key)
    value = head.get("Metadata", {}).get("sha256")
    return str(value) if value else None


def _upload(
    client: Any, plan: DeployPlan, progress: Callable[[str, str], None] | None
) -> None:
    def put(item: LocalFile) -> str:
        client.put_object(
            Bucket=plan.bucket,
            Key=plan.key(item.path),
            Body=item.source.read_bytes(),
            ContentType=content_type(item.path),
            CacheControl=cache_control(item.path),
            Metadata={"sha256": item.sha256},
        )
        return item.path

    # Each stage finishes before the next starts, so that pages go up only
    # once their images are there, and the archive and feeds last of all.
    stages: dict[int, list[LocalFile]] = {}
    for item in plan.upload:
        stages.setdefault(_upload_order(item)[0], []).append(item)
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS) as pool:
        for _, items in sorted(stages.items()):
            for path in pool.map(put, items):
                log.info("uploaded %s", path)
                if progress:
                    progress("upload", path)


def _delete(
    client: Any, plan: DeployPlan, progress: Callable[[str, str], None] | None
) -> None:
    for start in range(0, len(plan.delete), DELETE_BATCH):
        batch = plan.delete[start : start + DELETE_BATCH]
        answer = client.delete_objects(
            Bucket=plan.bucket,
            Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise SiteError(
                f"{s3_url(plan.bucket, first.get('Key', ''))}: cannot delete: "
                f"{first.get('Code', 'error')}: {first.get('Message', '')}".rstrip(": ")
            )
        for key in batch:
            log.info("deleted %s", key)
            if progress:
                progress("delete", key[len(plan.prefix) :])
