"""The static site: the archive readers browse and the feeds they follow.

    public/index.html                 the archive, newest first
    public/issues/<slug>/index.html   an issue's page (its view-in-browser link)
    public/tags/<tag>/index.html      each tag's issues
    public/subscribe/index.html       the signup form
    public/feed.xml, public/feed.atom the newest issues as RSS 2.0 and Atom
    public/sitemap.xml, robots.txt    every page, for search engines
    public/media/...                  the issues' images and files
    public/static/...                 the site's own files (the logo, the favicon)
    public/404.html                   for the host's missing pages

A build has two phases, as in Pelican: planning decides every file's bytes
in memory (it writes nothing, so a bad issue stops the build before anything
is written), then the one writer writes the files whose bytes changed and
removes the ones a previous build wrote that are gone. One job per module:

    build.py      build_site: read the last build, plan, write
      │
      ├─ cache.py      read_last_build: public/.publish-site.json and the pages it
      │                lists → LastBuild (plain data); the fingerprint and key a
      │                page must match to be used again
      ├─ plan.py       plan_site(context, sent, now, LastBuild) → Site, reads no file
      │    ├─ selection.py   which issues are published (sent, or publish_at passed)
      │    ├─ cache.py       reuse a remembered page, or the issue the command
      │    │                 rendered already, or render_issue again
      │    └─ pages.py       archive, tag, subscribe and 404 pages, feeds, sitemap
      └─ writer.py     write_site(public_dir, Site) → SiteReport: the only code
                       that writes public/

An issue's page itself is :mod:`pipeline.webpage`'s, rendered with the issue
(:func:`~pipeline.render.render_issue`); planning hands it the issues around
it. A rebuild reuses the page of every issue whose inputs are unchanged: its
file, the web templates, the settings a page shows (not delivery, the
database or secrets), the rendering code, the issues it links to and the
issues around it.
"""

from pipeline.site.build import build_site, build_site_from_ledger
from pipeline.site.cache import MANIFEST, MANIFEST_VERSION, LastBuild, read_last_build
from pipeline.site.pages import FEED_SIZE, LOGO_SIZE, ArchiveEntry
from pipeline.site.plan import Site, plan_site
from pipeline.site.selection import Selection, published_at, select_issues
from pipeline.site.writer import SiteReport, write_site
from pipeline.templates import WEB_TEMPLATES, web_template_dirs
from pipeline.webpage import LOGO, signup_form

__all__ = [
    "FEED_SIZE",
    "LOGO",
    "LOGO_SIZE",
    "MANIFEST",
    "MANIFEST_VERSION",
    "WEB_TEMPLATES",
    "ArchiveEntry",
    "LastBuild",
    "Selection",
    "Site",
    "SiteReport",
    "build_site",
    "build_site_from_ledger",
    "plan_site",
    "published_at",
    "read_last_build",
    "select_issues",
    "signup_form",
    "web_template_dirs",
    "write_site",
]
