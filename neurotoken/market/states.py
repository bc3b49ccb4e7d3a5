"""IComputeMarket.JobState, defined once for every Python reader of the market."""

from __future__ import annotations

from enum import IntEnum


class JobState(IntEnum):
    """IComputeMarket.JobState, by value."""

    NONE = 0
    POSTED = 1
    ACCEPTED = 2
    SUBMITTED = 3
    PAID = 4
    REJECTED = 5
    CANCELLED = 6
    EXPIRED = 7
    DEFAULTED = 8
    LAPSED = 9

    @property
    def label(self) -> str:
        """The Solidity name, e.g. 'Posted'."""
        return self.name.capitalize()


PAYOUT_EVENTS = (
    "JobPaid",
    "JobRejected",
    "JobCancelled",
    "JobExpired",
    "JobDefaulted",
    "JobLapsed",
)
"""The market events that end a job with a payout: exactly one per job."""


def state_label(value: int) -> str:
    """The Solidity name of a raw state value, or 'unknown state N'."""
    try:
        return JobState(int(value)).label
    except ValueError:
        return f"unknown state {value}"
