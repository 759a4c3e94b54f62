"""Publishing pipeline for the Pain Free Living newsletter.

The flow, as data::

    issues/*.md ──Context.load──▶ Context           settings, templates, the file index
        │                                           (context.py: the one place the
        │                                           stages below get files from)
        └─parse──▶ Issue ──render──▶ RenderedIssue  issue.py, body.py, links.py, render.py
                                   │
                                   ├─plan──▶ Site ──write──▶ public/   site/plan.py, site/writer.py
                                   │
                                   └─prepare_send──▶ Send + ledger rows   publish.py, sendplan.py
                                         └─personalize──▶ OutgoingMessage per reader
                                               └─Transport.send──▶ provider id ──▶ ledger

Parsing, linting, rendering, planning the site and personalizing are pure
functions of the context and their input. Each kind of I/O has one home:

    reading issues, templates, pictures   context.py (Context.load)
    writing public/                        site/writer.py
    delivering mail                        transports/ (outbox, ses, smtp, memory)
    the database                           subscribers.store, subscribers.ledger (SQL)
    fetching a blog feed                   fetch.py (SSRF-guarded HTTP)
    uploading the site                     deploy.py (S3)
    files kept through an outage           recovery.py
    new issue files                        authoring.py
    erasing a reader's files               erasure.py

Errors an editor can cause are in one tree, drawn in
:mod:`subscribers.errors`; the CLI (:mod:`pipeline.cli`) catches its root.
"""

__version__ = "0.1.0"
