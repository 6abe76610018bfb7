"""How the run console shows an operator task (one line, as ``cellauto tasks`` would)."""

from __future__ import annotations

from cellauto.protocols.tasks import OfferedTask

__all__ = ["describe_task"]


def describe_task(task: OfferedTask) -> str:
    """``TASK 7F3K2Q9A confirm: connect apheresis bag — instruction`` (and what is asked)."""
    opened = task.opened
    summary = opened.summary
    if task.phase == "verify":
        entered = "" if summary.what == "confirm" else f" {task.value!r}"
        what = f"verify: {opened.name} — performed{entered} by {task.performer}"
    else:
        what = f"{summary.what}: {opened.name} — {summary.instruction}"
        if summary.what == "entry":
            wanted = [summary.value_type or "value"]
            if summary.unit:
                wanted.append(f"in {summary.unit}")
            if summary.choices:
                wanted.append("one of " + ", ".join(summary.choices))
            if summary.spec is not None:
                low, high = summary.spec.min, summary.spec.max
                wanted.append(f"spec {'' if low is None else low}..{'' if high is None else high}")
            what += f" [{'; '.join(wanted)}]"
    due = "" if opened.timeout_h is None else f" (within {opened.timeout_h:g} h)"
    return f"TASK {opened.task_id} {what}{due}"
