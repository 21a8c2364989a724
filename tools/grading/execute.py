"""How the autograder executes a submission: outputs cut to size, the kernel in the sandbox.

nbgrader's ``Execute`` keeps every byte a notebook prints, so a submission printing 100 MB made a
100 MB feedback page (and a loop printing forever would fill the grader's memory). Here each cell's
outputs are cut while they arrive, once they pass ``c.GradingSandbox.output_chars``, with a note
saying so. Cutting never changes a grade: nbgrader scores a test cell by the first error, stderr
stream or ``execute_result`` among its outputs, so the first of each that arrives after the cut is
kept (shortened); stderr that nbgrader's ``IgnorePattern`` would drop anyway (warnings) is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_output

from tools.grading.sandbox import GradingSandbox, Sandbox, SandboxedKernelManager
from tools.notebooks import poll_in_slices

# A kept verdict (error, execute_result, stderr) shows at least this much, however full the cell is:
# enough for an exception's message and for a partial-credit number.
VERDICT_CHARS = 2_000


def cut_note(limit: int) -> str:
    return f"\n[output cut after {limit:,} characters]\n"


def _kind(out: NotebookNode) -> str:
    return out.name if out.output_type == "stream" else out.output_type


def output_chars(out: NotebookNode) -> int:
    """Characters an output adds to the feedback page (base64 images count as their text)."""
    if out.output_type == "stream":
        return len(out.text)
    if out.output_type == "error":
        return len(out.ename) + len(out.evalue) + sum(len(line) for line in out.traceback)
    return sum(len(v) if isinstance(v, str) else len(str(v)) for v in out.get("data", {}).values())


def shorten(out: NotebookNode, room: int) -> NotebookNode:
    """``out`` cut to about ``room`` characters, in place: text keeps its start; data other than
    text/plain (images, HTML) is dropped whole, since half an image is no image."""
    room = max(room, 0)
    if out.output_type == "stream":
        out.text = out.text[:room]
    elif out.output_type == "error":
        out.evalue = out.evalue[:room]
        kept, used = [], len(out.evalue)
        for line in out.traceback:
            if used + len(line) > room:
                kept.append(line[: max(room - used, 0)])
                break
            kept.append(line)
            used += len(line)
        out.traceback = kept
    elif "data" in out:
        text = out.data.get("text/plain", "")
        out.data = {"text/plain": (text if isinstance(text, str) else str(text))[:room]}
    return out


@dataclass
class CellBudget:
    """The outputs of one cell, admitted one by one until ``limit`` characters (see the module)."""

    limit: int
    ignorable: Callable[[str], bool]
    used: int = 0
    cut: bool = False
    verdicts: set[str] = field(default_factory=set)  # kinds kept since the cut

    def admit(self, out: NotebookNode) -> list[NotebookNode]:
        """What to append to the cell for ``out``: itself, a shortened copy and the note, or nothing."""
        size = output_chars(out)
        if not self.cut and self.used + size <= self.limit:
            self.used += size
            return [out]
        kind = _kind(out)
        # The ignore test sees a bounded head: a configured pattern might take time superlinear in it.
        head = out.text[: 10 * self.limit] if kind == "stderr" else ""
        verdict = kind in ("error", "execute_result") or (kind == "stderr" and not self.ignorable(head))
        room = self.limit - self.used
        admitted = []
        if verdict and kind not in self.verdicts:
            self.verdicts.add(kind)
            admitted.append(shorten(out, max(room, VERDICT_CHARS) if not self.cut else VERDICT_CHARS))
        elif not self.cut and kind != "stderr":
            admitted.append(shorten(out, room))
        if not self.cut:
            self.cut = True
            self.used = self.limit
            admitted.append(new_output("stream", name="stdout", text=cut_note(self.limit)))
        return admitted


def ignored_stderr(config) -> Callable[[str], bool]:
    """The stderr test of nbgrader's IgnorePattern as configured (what the autograder drops)."""
    from nbgrader.preprocessors import IgnorePattern

    ignore = IgnorePattern(config=config)
    pattern = re.compile(ignore.pattern) if ignore.enabled and ignore.pattern else None
    return lambda text: pattern is not None and pattern.search(text) is not None


def execute_class(sandbox: Sandbox | None) -> type:
    """nbgrader's Execute preprocessor with outputs cut to size and, given a ``sandbox``, the kernel
    in it. Configured as ``Execute`` (timeouts, kernel arguments) and ``GradingSandbox``."""
    from nbgrader.preprocessors import Execute

    class GradingExecute(Execute):
        def reset_execution_trackers(self) -> None:
            super().reset_execution_trackers()
            self._limit = GradingSandbox(config=self.config).output_chars
            self._ignorable = ignored_stderr(self.config)
            self._budgets: dict[int, CellBudget] = {}

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            for channel in (kc.shell_channel, kc.iopub_channel):
                poll_in_slices(channel)  # else a missed wake-up turns an honest cell into a timeout
            return kc

        # nbclient's blocking names are bound to its own coroutines: rebind them to these.
        start_new_kernel_client = run_sync(async_start_new_kernel_client)

        def output(self, outs, msg, display_id, cell_index):
            if self.clear_before_next_output:  # nbclient empties the cell on this output
                self._budgets.pop(cell_index, None)
            budget = self._budgets.setdefault(cell_index, CellBudget(self._limit, self._ignorable))
            out = super().output(outs, msg, display_id, cell_index)
            if out is None or not outs or outs[-1] is not out:
                return out
            index = len(outs) - 1
            outs[index:] = budget.admit(out)
            if display_id and (len(outs) <= index or outs[index] is not out):
                # dropped: a later update of this display must not land on another output
                indices = self._display_id_map.get(display_id, {}).get(cell_index, [])
                if index in indices:
                    indices.remove(index)
            return out

        def clear_output(self, outs, msg, cell_index):
            super().clear_output(outs, msg, cell_index)
            if not outs:
                self._budgets.pop(cell_index, None)

        def _update_display_id(self, display_id, msg):
            # A display updated in place replaces earlier data: cut the new data the same way.
            content = msg["content"]
            probe = new_output("display_data", data=content.get("data", {}))
            if output_chars(probe) > self._limit:
                content["data"] = shorten(probe, self._limit).data
                content["data"]["text/plain"] += cut_note(self._limit)
            super()._update_display_id(display_id, msg)

        def handle_comm_msg(self, outs, msg, cell_index):
            # Widget traffic is not kept: graded cells hold no widgets, and nbclient would store
            # every widget state (and an Output widget's captured outputs) without limit.
            return None

        def on_cell_executed(self, **kwargs):
            # nbgrader appends the reply's error when no output recorded it: cut it first.
            content = kwargs["execute_reply"]["content"]
            if content.get("status") == "error":
                error = shorten(
                    new_output(
                        "error",
                        ename=str(content.get("ename", "")),
                        evalue=str(content.get("evalue", "")),
                        traceback=[str(line) for line in content.get("traceback", [])],
                    ),
                    max(self._limit, VERDICT_CHARS),
                )
                content.update(ename=error.ename, evalue=error.evalue, traceback=error.traceback)
            return super().on_cell_executed(**kwargs)

    if sandbox is None:
        return GradingExecute

    class SandboxedExecute(GradingExecute):
        def create_kernel_manager(self):
            # The kernel spec is the sandbox's own; the name only tells nbclient it is IPython.
            self.km = SandboxedKernelManager(sandbox=sandbox, kernel_name="python3", config=self.config)
            return self.km

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            self.km.lock_down()
            return kc

        # nbclient's blocking names are bound to its own coroutines: rebind them to these.
        start_new_kernel_client = run_sync(async_start_new_kernel_client)

        async def async_execute_cell(self, *args, **kwargs):
            # nbclient says only "Kernel died" when its liveness check fails; name the limit.
            try:
                return await super().async_execute_cell(*args, **kwargs)
            except DeadKernelError:
                if self.km is not None and self.km.stop_reason:
                    raise DeadKernelError(f"Kernel stopped: {self.km.stop_reason}") from None
                raise
            except CellTimeoutError:
                # On a busy machine a fork bomb can outlast the cell's timeout before a liveness check
                # sees the sandbox full; a sandbox full now is the reason, not the interrupt.
                if self.km is not None and await self.km.stop_if_full():
                    raise DeadKernelError(f"Kernel stopped: {self.km.stop_reason}") from None
                raise

        execute_cell = run_sync(async_execute_cell)

    return SandboxedExecute
