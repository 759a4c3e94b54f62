"""The AWS reads of one :func:`pipeline.golive.account.observe`: each one
answers, finds nothing (a code the caller names as "missing": None), or
fails.

    reads = Reads(keep_going=False)      publish setup: a failure is raised,
                                         one line (clients.aws_error)
    reads = Reads(keep_going=True)       publish doctor: a failure is kept in
                                         reads.unread, and the enclosing
                                         reads.part(...) answers its default
    reads.part("SNS topic", "the topic", ("topic_arn",), None,
               lambda: reads.call("reading the SNS topic X",
                                  sns.get_topic_attributes, TopicArn=X))

A part is one thing observe reads, possibly in several calls; its fields
are what its failure leaves unknown. An error that is not AWS's (a bug) is
raised either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from pipeline.errors import PublishError
from pipeline.golive.account_state import Unread
from pipeline.golive.clients import ACCESS_DENIED, aws_error, code_of
from subscribers.aws import aws_problem

T = TypeVar("T")


class Unanswered(Exception):
    """An internal signal: a read failed and is being kept, so what needed
    it stays unknown (:meth:`Reads.part` records it as :class:`Unread`)."""

    def __init__(self, description: str, cause: Exception, failure: Exception) -> None:
        super().__init__(description)
        self.description, self.cause, self.failure = description, cause, failure


@dataclass
class Reads:
    """The reads of one :func:`~pipeline.golive.account.observe`: each
    answers, or its failure is raised, or (``keep_going``) kept in ``unread``."""

    keep_going: bool
    unread: list[Unread] = field(default_factory=list)

    def call(
        self,
        description: str,
        fn: Callable[..., Any],
        *,
        missing: tuple[str, ...] = (),
        **params: Any,
    ) -> Any:
        """``fn(**params)``; None when AWS answers with a code in ``missing``."""
        try:
            return fn(**params)
        except Exception as exc:
            if code_of(exc) in missing:
                return None
            self.fail(description, exc, fn)

    def pages(self, description: str, client: Any, operation: str, **params: Any) -> list[Any]:
        """Every page of a listing call."""
        try:
            return list(client.get_paginator(operation).paginate(**params))
        except Exception as exc:
            self.fail(description, exc, getattr(client, operation))

    def fail(self, description: str, exc: Exception, fn: Callable[..., Any]) -> NoReturn:
        """Raise ``exc`` as one line, or keep it and skip to the enclosing :meth:`part`."""
        failure = aws_error(description, exc, fn)
        if not self.keep_going or not isinstance(failure, PublishError):
            raise failure from None  # setup, or not AWS's error (a bug shows as one)
        raise Unanswered(description, exc, failure) from None

    def part(
        self,
        subject: str,
        unknown: str,
        fields: tuple[str, ...],
        default: T,
        read: Callable[[], T],
    ) -> T:
        """``read()``, or ``default`` with ``fields`` unknown when a read in it failed."""
        try:
            return read()
        except Unanswered as skipped:
            self.unread.append(
                Unread(
                    subject=subject,
                    description=skipped.description,
                    problem=aws_problem(skipped.cause) or "",
                    refusal=str(skipped.failure),
                    denied=code_of(skipped.cause) in ACCESS_DENIED,
                    unknown=unknown,
                    fields=fields,
                )
            )
            return default

    def known(self, *fields: str) -> bool:
        """No failed read so far left any of ``fields`` unknown."""
        return not any(name in item.fields for item in self.unread for name in fields)
