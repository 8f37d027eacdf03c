"""The search attributes an execution keeps current (registered by `coord server`)."""

from temporalio.common import SearchAttributeKey

STATUS = SearchAttributeKey.for_keyword("CoordinatorStatus")
PHASE = SearchAttributeKey.for_keyword("CoordinatorPhase")
PROGRESS = SearchAttributeKey.for_int("CoordinatorProgress")
PLAN = SearchAttributeKey.for_keyword("CoordinatorPlan")

ALL = (STATUS, PHASE, PROGRESS, PLAN)
