"""The configuration sets and their event destinations, checked against what
the newsletter needs: part of ``publish doctor``, pure functions of what
:func:`pipeline.golive.account.observe` read.

    configuration_sets(AccountState, Names, Settings) ──> [Finding]
        the configuration set: it exists, its SNS destination is enabled,
        publishes the six event types (OPEN and CLICK too with
        tracking.enabled) to the newsletter's topic; opens and clicks while
        tracking is off are a warning
        with tracking.enabled, the service set confirm and welcome mail is
        sent with: the same, but OPEN or CLICK on it is an error (SES would
        send the confirm link through its redirect and track a reader who
        never agreed to the newsletter); while tracking is off nothing
        needs it, and nothing is said of it

What was not read (``state.unread``) is not judged, so never called missing.
Every problem's fix is ``run publish setup ses``, which makes and mends both.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import Settings
from pipeline.golive.account import AccountState, DestinationState
from pipeline.golive.findings import Finding, error, ok, warning
from pipeline.golive.names import EVENT_TYPES, TRACKING_EVENT_TYPES, Names, event_types

SETUP = "run publish setup ses"


def configuration_sets(state: AccountState, names: Names, settings: Settings) -> list[Finding]:
    """The findings about both sets, the newsletter's first."""
    found = []
    if state.known("configuration_set", "destination"):
        found += _main(state, names, settings)
    if settings.tracking and state.known("service_configuration_set", "service_destination"):
        found += _service(state, names)
    return found


def _main(state: AccountState, names: Names, settings: Settings) -> list[Finding]:
    name = names.configuration_set
    types = event_types(settings)
    if not state.configuration_set:
        return [error("configuration set", f"{name} does not exist in {state.region}", SETUP)]
    destination = state.destination
    if destination is None:
        return [
            error(
                "event destination",
                f"{name} has no SNS event destination: SES publishes none of {', '.join(types)}",
                SETUP,
            )
        ]
    found = _destination("event destination", name, destination, types, state.topic_arn)
    tracked = [kind for kind in TRACKING_EVENT_TYPES if kind in destination.event_types]
    if tracked and not settings.tracking:
        found.append(
            warning(
                "event destination",
                f"{destination.name} publishes {', '.join(tracked)}, so SES still tracks "
                "opens and clicks, though tracking.enabled is false",
                f"{SETUP} (it removes them), or set tracking.enabled = true",
            )
        )
    if not found:
        found.append(ok("event destination", f"{name} publishes {', '.join(types)} to the topic"))
    return found


def _service(state: AccountState, names: Names) -> list[Finding]:
    name = names.service_configuration_set
    if not state.service_configuration_set:
        return [
            error(
                "service configuration set",
                f"{name} does not exist in {state.region}: SES refuses the confirm and welcome "
                "mail sent with it while tracking.enabled is on",
                SETUP,
            )
        ]
    destination = state.service_destination
    if destination is None:
        return [
            error(
                "service event destination",
                f"{name} has no SNS event destination: the bounces and complaints of confirm "
                "and welcome mail never reach the list",
                SETUP,
            )
        ]
    found = _destination(
        "service event destination", name, destination, EVENT_TYPES, state.topic_arn
    )
    tracked = [kind for kind in TRACKING_EVENT_TYPES if kind in destination.event_types]
    if tracked:
        found.append(
            error(
                "service event destination",
                f"{destination.name} of {name} publishes {', '.join(tracked)}, so SES tracks "
                "confirm and welcome mail: the confirm link goes through its redirect",
                f"{SETUP} (it removes them)",
            )
        )
    if not found:
        found.append(
            ok(
                "service event destination",
                f"{name} publishes {', '.join(EVENT_TYPES)} to the topic, no opens or clicks",
            )
        )
    return found


def _destination(
    subject: str,
    name: str,
    destination: DestinationState,
    types: Sequence[str],
    topic_arn: str,
) -> list[Finding]:
    """What is wrong with a set's SNS destination: disabled, a type missing,
    another topic (``topic_arn`` empty: the topic does not exist, said elsewhere)."""
    spelled = ", ".join(types)
    found = []
    if not destination.enabled:
        found.append(
            error(
                subject,
                f"{destination.name} is disabled: SES publishes none of {spelled}",
                f"{SETUP} (it enables it), or enable it in the SES console → "
                f"Configuration sets → {name} → Event destinations",
            )
        )
    missing = [kind for kind in types if kind not in destination.event_types]
    if missing:
        found.append(
            error(subject, f"{destination.name} does not publish {', '.join(missing)}", SETUP)
        )
    if topic_arn and destination.topic_arn != topic_arn:
        found.append(
            error(
                subject,
                f"{destination.name} publishes to {destination.topic_arn or 'no SNS topic'}, "
                f"not to {topic_arn}: SES publishes none of {spelled} there",
                SETUP,
            )
        )
    return found


__all__ = ["configuration_sets"]
