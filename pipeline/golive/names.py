"""The names ``publish setup ses`` gives what it makes, derived from the
settings so that a second run finds the same things, and ``publish doctor``
knows what to look for.

    sending domain     the domain of ``sender.from``         painfreeliving.example.com
    MAIL FROM domain   bounce.<sending domain>               bounce.painfreeliving.example.com
    receiving domain   list.<sending domain>                 list.painfreeliving.example.com
    configuration set  <slug of newsletter.name>             pain-free-living
    service set        <configuration set>-service           pain-free-living-service
    SNS topic          <slug>-ses-events
    SQS queue          <slug>-ses-events, and <slug>-ses-events-dlq
    event destination  <slug>-events                         (of the configuration set)
                       <slug>-service-events                 (of the service set)
    receipt rule set   <slug>, rule <slug>-unsubscribe

A configured ``delivery.ses_configuration_set`` wins over the derived name.

The service set is what confirm and welcome mail is sent with while
``tracking.enabled`` is on (:func:`pipeline.transports.ses.configuration_set_for`): its
destination publishes :data:`EVENT_TYPES` to the same topic, so their
bounces and complaints reach the list as an issue's do, but never OPEN or
CLICK, so SES neither sends their links (the confirm link among them)
through its click redirect nor adds its open image. Setup makes it whatever
``tracking.enabled`` says, so that turning tracking on never sends service
mail with a set not made yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.issue import slugify
from pipeline.transports.ses import SERVICE_SUFFIX

EVENT_TYPES = ("SEND", "DELIVERY", "BOUNCE", "COMPLAINT", "REJECT", "RENDERING_FAILURE")
"""The SESv2 event types the configuration set publishes to the topic."""
TRACKING_EVENT_TYPES = ("OPEN", "CLICK")
"""With ``tracking.enabled``, these too. SES tracks opens (an image) and
clicks (links through its redirect) only while a destination publishes
them: without, it leaves the mail as it was sent."""

MAIL_FROM_LABEL = "bounce"
RECEIVE_LABEL = "list"


@dataclass(frozen=True)
class Names:
    domain: str
    mail_from_domain: str
    receive_domain: str
    configuration_set: str
    topic: str
    queue: str
    dead_letter_queue: str
    event_destination: str
    service_configuration_set: str
    service_event_destination: str
    rule_set: str
    rule: str


def event_types(settings: Settings) -> tuple[str, ...]:
    """The event types the newsletter's destination must publish."""
    return EVENT_TYPES + TRACKING_EVENT_TYPES if settings.tracking else EVENT_TYPES


def names_for(settings: Settings) -> Names:
    slug = slugify(settings.name) or "newsletter"
    domain = settings.sender.domain
    configuration_set = settings.ses_configuration_set or slug
    return Names(
        domain=domain,
        mail_from_domain=f"{MAIL_FROM_LABEL}.{domain}",
        receive_domain=f"{RECEIVE_LABEL}.{domain}",
        configuration_set=configuration_set,
        topic=f"{slug}-ses-events",
        queue=f"{slug}-ses-events",
        dead_letter_queue=f"{slug}-ses-events-dlq",
        event_destination=f"{slug}-events",
        service_configuration_set=configuration_set + SERVICE_SUFFIX,
        service_event_destination=f"{slug}{SERVICE_SUFFIX}-events",
        rule_set=slug,
        rule=f"{slug}-unsubscribe",
    )
