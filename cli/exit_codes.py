"""Stable exit codes of `coord`: scripts and CI jobs branch on them. No Temporal import here,
so `coord validate` stays light."""

from enum import IntEnum

from coordinator.report import ExecutionStatus


class ExitCode(IntEnum):
    COMPLETE = 0
    NOT_COMPLETE = 1  # partial, failed or cancelled (or the command could not do it)
    INVALID = 2  # invalid plan or arguments
    WAITING_ON_HUMAN = 3  # an escalation or an approval is pending
    UNREACHABLE = 4  # Temporal could not be reached, or was lost on the way


def exit_code_for(status: ExecutionStatus) -> ExitCode:
    if status == ExecutionStatus.COMPLETED:
        return ExitCode.COMPLETE
    if status in (ExecutionStatus.ESCALATED, ExecutionStatus.AWAITING_APPROVAL):
        return ExitCode.WAITING_ON_HUMAN
    return ExitCode.NOT_COMPLETE
