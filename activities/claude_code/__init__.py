"""The `claude-code` backend: Claude Code itself runs a specialist, through `claude-agent-sdk`.

An unchanged `.claude/agents/*.md` file runs as Claude Code's main agent in the task's
worktree: its body is the system prompt, `tools:` the exact tool list, `model:` the model (with
`inherit` and the plan's `model`), the plan's `max_turns` the turn limit. The package is the
optional extra `coord[claude-code]`; nothing here imports it at module level, so a worker
without it starts and says what to install when a plan needs it.

- `sdk.py`: whether the extra is installed, and where its bundled Claude Code is;
- `prompt.py`: the system prompt and the task message;
- `launch.py`: the per-execution config folder, the environment and the jail of the process;
- `session.py`: one Claude Code run, streamed: transcript, heartbeats, session id, spend;
- `outcome.py`: a run's end as an attempt's result, or as the error the engine acts on;
- `activity.py`: the activity the workflows call (`run_claude_code_specialist`);
- `checks.py`: what a worker or `coord validate` says is missing, and tool warnings.
"""
