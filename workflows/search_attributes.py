"""Typed keys for the coordinator's search attributes (names and types: coordinator.visibility)."""

from temporalio.common import SearchAttributeKey

from coordinator import visibility

STATUS = SearchAttributeKey.for_keyword(visibility.STATUS)
PHASE = SearchAttributeKey.for_keyword(visibility.PHASE)
PROGRESS = SearchAttributeKey.for_int(visibility.PROGRESS)
PLAN = SearchAttributeKey.for_keyword(visibility.PLAN)
WAITING_SINCE = SearchAttributeKey.for_datetime(visibility.WAITING_SINCE)

ALL = (STATUS, PHASE, PROGRESS, PLAN, WAITING_SINCE)
