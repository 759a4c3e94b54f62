"""Subscribers: the store, consent, double opt-in, unsubscribe and bounces.

This package is the lower layer: it never imports ``pipeline``. Where it has
to send mail (confirmations, welcomes) it is handed, by whoever wires it
together (``publish serve``), the messages built once from the newsletter's
templates (mail.py's ServiceMail) and a callable that delivers them.

The flow, as data::

    form POST ──routes/signup──▶ service.Subscriptions ──▶ store (pending + signup)
                                      └─confirmation_queue──▶ mail.py (fills) ──▶ send_mail callable
    link GET/POST ──routes/confirm, routes/unsubscribe──▶ service ──▶ store (+ consent)
    SES notification ──sqs.py | routes/ses (sns.py)──▶ notifications.py ──▶ events.py ──▶ store
    a send ──ledger (claims, outcomes, reports)──▶ send_recipients rows

Each kind of I/O has one home:

    SQL                          store/, ledger/, limits.py (schema.py, migrations/)
    connecting and migrating     db/
    HTTP in                      web.py and routes/ (pages.py words the pages)
    SQS                          sqs.py, heartbeat.py
    SNS certificates             sns_fetch.py
    files (exports, the secret)  files.py (atomic writes), csvio.py, tokens.py

Shared by both layers: errors.py (the one exception tree), text.py (one
line of text), addresses.py (one address normalization), files.py, aws.py,
headers.py and mail_template.py (a message built once, filled per reader).
"""
