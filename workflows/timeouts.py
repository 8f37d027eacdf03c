"""The product's retry rule and the timeouts of its activity calls (workflows/steps.py and
the re-homing in workflows/placement.py use the same ones)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

# At most three attempts for everything that can be retried (the product's rule).
RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
# A killed worker is noticed within this, not at the task's timeout.
HEARTBEAT = timedelta(seconds=30)
# Our own timeouts (kill, drain the output) finish before Temporal's.
SLACK = timedelta(seconds=60)
GIT_TIMEOUT = timedelta(minutes=10)
# One GitHub API step: a few requests, each with its own 30 s timeout.
GITHUB_TIMEOUT = timedelta(minutes=3)
WEBHOOK_TIMEOUT = timedelta(seconds=30)
# Cancelling waits until processes are gone, so cleanup never races a running command.
WAIT = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
PREPARE_TIMEOUT = timedelta(minutes=30)  # a clone of a big repository
PLAN_CHECK_TIMEOUT = timedelta(minutes=2)
# A local activity: its input (the whole progress) stays out of history.
STATUS_FILE_TIMEOUT = timedelta(seconds=30)
