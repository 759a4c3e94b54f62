"""The database tables, in SQLAlchemy Core: the one description of the schema.

Alembic migrations in ``subscribers/migrations`` create and change these
tables; nothing else issues DDL. The same tables serve SQLite and PostgreSQL.

    subscribers         one row per address, with its consent record
    subscriber_events   the history of each subscriber (cascades on delete)
    suppressions        hashed addresses that must never be mailed again
                        without a new confirmed subscription (erasure,
                        complaints)
    store_keys          random values made once per newsletter: the salt
                        of the suppression hashes
    signups             form signups waiting for their confirmation: the
                        nonce in each one's link, and the name and consent
                        that confirming it makes the subscriber's
    rate_limits         hits per key (a hashed client network, mailbox or
                        domain) per fixed window, shared by every process;
                        rows expire after two windows
    sends               one row per issue sent to the list
    send_recipients     the ledger: the recipients snapshotted for a send and
                        where each one stands (pending → sending → sent |
                        failed | skipped), and whether it was handed to the
                        transport
    delivery_probes     the messages `publish doctor --live` sent to SES's
                        mailbox simulator, and the feedback the events path
                        recorded for each
    engagement_issues   per issue, the key of its unique counts' hashes,
                        dropped 30 days after its first open or click
    engagement_counts   opens, machine opens and clicks per issue: a total
                        and HyperLogLog registers (no subscriber, no address,
                        no message id)
    engagement_links    clicks per issue and link (query string removed)
    engagement_seen     keyed hashes of the open and click events counted,
                        so that a redelivery counts once; kept 30 days
    send_budget         per sending account, where the next free sending
                        slot begins: every sender books its slots here
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UTC_DATETIME = DateTime(timezone=True)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # The address as normalized by email-validator (domain lowercased).
    Column("email", String(320), nullable=False),
    # Lowercased address: uniqueness is case-insensitive.
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    # pending | active | unsubscribed | bounced | complained
    Column("status", String(20), nullable=False, index=True),
    # form | import | cli
    Column("source", String(20), nullable=False),
    Column("created_at", UTC_DATETIME, nullable=False),
    Column("updated_at", UTC_DATETIME, nullable=False),
    Column("confirmed_at", UTC_DATETIME),
    Column("unsubscribed_at", UTC_DATETIME),
    # Consent (GDPR Art. 7): when, from where, and the wording shown.
    Column("consent_at", UTC_DATETIME),
    Column("consent_ip", String(64)),
    Column("consent_user_agent", String(512)),
    Column("consent_text", Text),
    # The page the reader signed up on ("blog sidebar", "issue page"...).
    Column("consent_source", String(60)),
    Column("confirmed_ip", String(64)),
    Column("confirmed_user_agent", String(512)),
    Column("confirmation_sent_at", UTC_DATETIME),
    # Set by a form signup, cleared when the confirmation message goes out:
    # the queue the confirmation mailer works through. A mailer that claims
    # the message moves it to the end of its lease, so that the message is
    # due again if that mailer dies before recording the result.
    Column("confirmation_due_at", UTC_DATETIME, index=True),
    # The mailer (host:pid:nonce) holding the message, while it holds it.
    Column("confirmation_claimed_by", String(100)),
    # Claims of the current signup's message: bounded, then given up.
    Column("confirmation_attempts", Integer, nullable=False, server_default="0"),
    # The inbox the address delivers to (models.mailbox_key): what the limits
    # on confirmation messages count by. Set on every row since 0006.
    Column("mailbox_key", String(320), index=True),
)

subscriber_events = Table(
    "subscriber_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # subscribed | confirmation_sent | confirmation_failed |
    # confirmation_given_up | confirmed | unsubscribed | bounced |
    # soft_bounced | bounce_undetermined | complained | delivered | imported |
    # reactivated | erased | welcome_sent
    Column("kind", String(32), nullable=False),
    Column("at", UTC_DATETIME, nullable=False),
    # JSON text: what happened, from where (IP, user agent, bounce type...).
    Column("detail", Text, nullable=False, server_default="{}"),
    Column("send_id", Id, ForeignKey("sends.id", ondelete="SET NULL"), index=True),
    # Idempotency key for provider notifications (SES feedback id + address).
    Column("external_id", String(300), unique=True),
)
Index("ix_subscriber_events_kind_at", subscriber_events.c.kind, subscriber_events.c.at)

suppressions = Table(
    "suppressions",
    metadata,
    # HMAC-SHA256, under the newsletter's salt, of the lowercased address's
    # SHA-256: no address is kept, and a dictionary of addresses does not
    # reverse the hashes without the salt.
    Column("email_hash", String(64), primary_key=True),
    # erased | complained
    Column("reason", String(20), nullable=False),
    Column("created_at", UTC_DATETIME, nullable=False),
)

store_keys = Table(
    "store_keys",
    metadata,
    # "suppression": the salt of suppressions.email_hash.
    Column("name", String(40), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("created_at", UTC_DATETIME, nullable=False),
)

signups = Table(
    "signups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # In the signup's confirmation link; empty for signups from before 0006,
    # whose links carry none.
    Column("nonce", String(32), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("consent_at", UTC_DATETIME, nullable=False),
    Column("consent_ip", String(64)),
    Column("consent_user_agent", String(512)),
    Column("consent_text", Text),
    Column("consent_source", String(60)),
    Column("created_at", UTC_DATETIME, nullable=False),
    # When its link was mailed; never-mailed signups are dropped by the next one.
    Column("mailed_at", UTC_DATETIME),
    UniqueConstraint("subscriber_id", "nonce", name="uq_signups_subscriber_nonce"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    # SHA-256 of "kind:value" (an IP network, a mailbox, a domain): no
    # address is kept.
    Column("key", String(64), primary_key=True),
    # The window's start, in seconds since the epoch.
    Column("window_start", BigInteger, primary_key=True),
    Column("hits", Integer, nullable=False),
    Column("expires_at", UTC_DATETIME, nullable=False, index=True),
)

sends = Table(
    "sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue_slug", String(200), nullable=False, unique=True),
    Column("issue_path", String(1000), nullable=False),
    # sha256 of the issue file's bytes when the send began (None before 0005).
    Column("issue_digest", String(64)),
    Column("subject", String(998), nullable=False),
    Column("transport", String(20), nullable=False),
    # sending | paused | stopped | done
    Column("status", String(20), nullable=False),
    Column("created_at", UTC_DATETIME, nullable=False),
    Column("finished_at", UTC_DATETIME),
    Column("paused_until", UTC_DATETIME),
    Column("note", Text, nullable=False, server_default=""),
)

send_recipients = Table(
    "send_recipients",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("send_id", Id, ForeignKey("sends.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="SET NULL")),
    # Snapshot at the start of the send; scrubbed when a subscriber is erased.
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    # pending | sending | sent | failed | skipped
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # The provider's message id (SES MessageId), which bounce and complaint
    # notifications refer to.
    Column("message_id", String(300), index=True),
    Column("error", Text),
    Column("claimed_by", String(100)),
    # Refreshed by the claiming worker's heartbeat: its lease runs from here.
    Column("updated_at", UTC_DATETIME, nullable=False),
    Column("sent_at", UTC_DATETIME),
    # Committed before the message is handed to the transport, cleared when
    # the row goes back to pending: a crash leaves undecided only the rows
    # that have it and no result.
    Column("handed_at", UTC_DATETIME),
    UniqueConstraint("send_id", "subscriber_id", name="uq_send_recipients_send_subscriber"),
)
Index("ix_send_recipients_send_status", send_recipients.c.send_id, send_recipients.c.status)
# Erasing a subscriber finds their ledger rows to scrub them.
Index("ix_send_recipients_subscriber_id", send_recipients.c.subscriber_id)

delivery_probes = Table(
    "delivery_probes",
    metadata,
    # SES's MessageId of the probe, which its notifications refer to.
    Column("message_id", String(300), primary_key=True),
    # A mailbox simulator address: never a subscriber.
    Column("recipient", String(320), nullable=False),
    # delivery | bounce | complaint: what the simulator address answers.
    Column("expected", String(20), nullable=False),
    # Rows a day old are deleted by the next live check.
    Column("created_at", UTC_DATETIME, nullable=False, index=True),
    # The feedback recorded for it: the expected kind, or another until it comes.
    Column("kind", String(20)),
    # JSON text: the bounce type and subtype, the complaint's feedback type...
    Column("detail", Text, nullable=False, server_default="{}"),
    Column("recorded_at", UTC_DATETIME),
)

# Opens and clicks (tracking.enabled): aggregates only, never a subscriber.
engagement_issues = Table(
    "engagement_issues",
    metadata,
    Column("issue_slug", String(200), primary_key=True),
    # Random key of the keyed hashes of message ids that the unique counts
    # are made of; NULL from salt_until on, after which the registers can be
    # tested against no message id (and unique counts stay as they are).
    Column("salt", String(64)),
    Column("salt_until", UTC_DATETIME, nullable=False),
)

engagement_counts = Table(
    "engagement_counts",
    metadata,
    Column("issue_slug", String(200), primary_key=True),
    # open | machine_open | click
    Column("kind", String(20), primary_key=True),
    Column("total", BigInteger, nullable=False),
    # HyperLogLog registers (engagement/hll.py): about how many messages.
    Column("registers", LargeBinary, nullable=False),
)

engagement_links = Table(
    "engagement_links",
    metadata,
    Column("issue_slug", String(200), primary_key=True),
    # SHA-256 of url.
    Column("link_key", String(64), primary_key=True),
    # Normalized: no query string, fragment or personal token.
    Column("url", String(2000), nullable=False),
    Column("clicks", BigInteger, nullable=False),
    Column("registers", LargeBinary, nullable=False),
)

engagement_seen = Table(
    "engagement_seen",
    metadata,
    # Keyed hash of a counted event's whole body: its redelivery is a duplicate.
    Column("event_key", String(64), primary_key=True),
    # A midnight at least 30 days after the event; the row is deleted then.
    Column("expires_at", UTC_DATETIME, nullable=False, index=True),
)

send_budget = Table(
    "send_budget",
    metadata,
    # The account whose rate the slots share: the transport and, for SES, its region.
    Column("account", String(200), primary_key=True),
    # Seconds since the epoch, on the database's clock (SQLite: the host's),
    # where the first slot nobody has booked begins.
    Column("next_slot", Double, nullable=False),
    # Calls a second the latest slots were booked at (the account's rate).
    Column("rate", Double, nullable=False),
    Column("updated_at", UTC_DATETIME, nullable=False),
)
