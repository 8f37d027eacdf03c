"""Ticking an issue's checkboxes: only the right boxes change, every other byte stays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.checkboxes import TaskLine, tick_checkboxes

A = TaskLine("t1", "Create schema")
B = TaskLine("t2", "Add the endpoint")


def test_ticks_by_id_and_by_title_and_nothing_else() -> None:
    body = (
        "# Plan\n"
        "Some text about - [ ] t1 that is not a list item.\n"
        "- [ ] T1: Create schema (database-specialist)\n"
        "- [ ] T10: not t1\n"
        "- [ ] t1 and a space is not an id\n"
        "- [ ] Add the endpoint\n"
        "- [ ] t3: someone else's task\n"
    )
    outcome = tick_checkboxes(body, [A, B])
    assert outcome.body == (
        "# Plan\n"
        "Some text about - [ ] t1 that is not a list item.\n"
        "- [x] T1: Create schema (database-specialist)\n"
        "- [ ] T10: not t1\n"
        "- [ ] t1 and a space is not an id\n"
        "- [x] Add the endpoint\n"
        "- [ ] t3: someone else's task\n"
    )
    assert (outcome.ticked, outcome.already_ticked, outcome.not_found) == (["t1", "t2"], [], [])


def test_crlf_line_endings_and_a_missing_final_newline_are_kept() -> None:
    body = "intro\r\n- [ ] t1: Create schema\r\n- [ ] t2: Add the endpoint"
    outcome = tick_checkboxes(body, [A, B])
    assert outcome.body == "intro\r\n- [x] t1: Create schema\r\n- [x] t2: Add the endpoint"


def test_nested_lists_quotes_numbered_items_and_emphasised_ids() -> None:
    body = (
        "* [ ] Layer 0\n"
        "  * [ ] **t1** — Create schema\n"
        "    - [ ] sub-step of t1 (not a task)\n"
        "> 1. [ ] `t2`: endpoint\n"
        "\t+ [ ] T2) duplicate mention\n"
    )
    outcome = tick_checkboxes(body, [A, B])
    assert outcome.body == (
        "* [ ] Layer 0\n"
        "  * [x] **t1** — Create schema\n"
        "    - [ ] sub-step of t1 (not a task)\n"
        "> 1. [x] `t2`: endpoint\n"
        "\t+ [x] T2) duplicate mention\n"
    )


def test_code_fences_are_left_alone() -> None:
    body = (
        "```markdown\n"
        "- [ ] t1: Create schema\n"
        "```\n"
        "~~~~\n"
        "- [ ] t2: inside a tilde fence\n"
        "~~~\n"  # too short to close a four-tilde fence
        "- [ ] t2: still inside\n"
        "~~~~\n"
        "  ```\n"
        "  - [ ] t2: inside an indented fence\n"
        "  ```\n"
        "- [ ] t1: Create schema\n"
        "```not-a-fence``` - [ ] t2 inline\n"
        "- [ ] t2: after the fences\n"
    )
    outcome = tick_checkboxes(body, [A, B])
    lines = outcome.body.split("\n")
    assert lines[1] == "- [ ] t1: Create schema"
    assert lines[4] == "- [ ] t2: inside a tilde fence"
    assert lines[6] == "- [ ] t2: still inside"
    assert lines[9] == "  - [ ] t2: inside an indented fence"
    assert lines[11] == "- [x] t1: Create schema"
    assert lines[13] == "- [x] t2: after the fences"
    assert sum(a != b for a, b in zip(body, outcome.body, strict=True)) == 2


def test_already_ticked_boxes_stay_and_ticking_twice_changes_nothing() -> None:
    body = "- [X] t1: Create schema\n- [ ] t2: Add the endpoint\n"
    first = tick_checkboxes(body, [A, B])
    assert first.body == "- [X] t1: Create schema\n- [x] t2: Add the endpoint\n"
    assert (first.ticked, first.already_ticked) == (["t2"], ["t1"])
    second = tick_checkboxes(first.body, [A, B])
    assert second.body == first.body
    assert not second.changed
    assert sorted(second.already_ticked) == ["t1", "t2"]


def test_tasks_the_issue_does_not_name_are_reported() -> None:
    outcome = tick_checkboxes("- [ ] something else\n", [A])
    assert outcome.body == "- [ ] something else\n"
    assert outcome.not_found == ["t1"]


_LINES = st.sampled_from(
    [
        "- [ ] t1: Create schema",
        "- [ ] Add the endpoint (api)",
        "  - [x] t2",
        "- [ ] t10",
        "```",
        "~~~",
        "> * [ ] T1 quoted",
        "plain text [ ] t1",
        "",
        "1. [ ] t2: numbered",
    ]
)


@given(st.lists(_LINES, max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_only_spaces_between_brackets_ever_change(lines: list[str], newline: str) -> None:
    body = newline.join(lines)
    outcome = tick_checkboxes(body, [A, B])
    assert len(outcome.body) == len(body)
    changed = [i for i, (a, b) in enumerate(zip(body, outcome.body, strict=True)) if a != b]
    for i in changed:
        assert (body[i - 1 : i + 2], outcome.body[i]) == ("[ ]", "x")
    assert tick_checkboxes(outcome.body, [A, B]).body == outcome.body


def test_the_exact_item_text_read_from_the_issue_wins() -> None:
    """A plan read from this issue knows each task's item text: that line is ticked, even
    when neither the id nor the title would match it, and before a looser match elsewhere."""
    body = "- [ ] t1: Create schema, the first try\n- [ ] Write the **docs** for `api` (docs)\n"
    docs = TaskLine("write-the-docs-for-api", "Write the docs for `api`")
    assert not tick_checkboxes(body, [docs]).changed
    explicit = TaskLine(docs.id, docs.title, text="Write the **docs** for `api` (docs)")
    first_try = TaskLine("t1", "Create schema", text="t1: Create schema, the first try")
    outcome = tick_checkboxes(body, [A, explicit, first_try])
    assert outcome.body == body.replace("[ ]", "[x]")
    assert outcome.ticked == ["t1", docs.id]  # the first line is t1's by its text
