"""The search attributes the coordinator keeps on every execution: one table, used by the dev
server's defaults (coord server registers them), the worker's check and the workflows."""

from typing import Literal

SearchAttributeType = Literal["Text", "Keyword", "Int", "Double", "Bool", "Datetime", "KeywordList"]

STATUS = "CoordinatorStatus"
PHASE = "CoordinatorPhase"
PROGRESS = "CoordinatorProgress"
PLAN = "CoordinatorPlan"
# Set while an escalation or an approval waits on a human (to when it was asked), unset once
# answered: `CoordWaitingSince IS NOT NULL` lists everything waiting on someone.
WAITING_SINCE = "CoordWaitingSince"

SEARCH_ATTRIBUTES: dict[str, SearchAttributeType] = {
    STATUS: "Keyword",
    PHASE: "Keyword",
    PROGRESS: "Int",
    PLAN: "Keyword",
    WAITING_SINCE: "Datetime",
}
