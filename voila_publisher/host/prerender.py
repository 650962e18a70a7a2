"""Static pages: a dashboard without live widgets is rendered once, at publish time, in the sandbox.

By default Voila starts a kernel for every visitor and runs the whole notebook again; 30
viewers arriving together wait 15 s each on two cores. Most dashboards are a report: the same
numbers and plots for everyone. For those, the publisher asks Voila (which runs every kernel in
the sandbox, see :mod:`voila_publisher.host.sandbox_kernel`) to execute the new version once and
turn it into HTML; nginx then serves that file to every viewer, with no kernel at all.

A dashboard keeps live kernels when its page needs one (:func:`why_live`): an output is a widget
(sliders and plots that answer them need their kernel), or a cell failed (Voila shows the viewer
a generic error without the traceback; a static page would show either too little or too much).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Prerendered:
    html: str | None  # the page, or None when the dashboard must stay live
    reason: str  # why it stays live ("" when static)
    thumbnail: str = ""  # base64 PNG: the first image the dashboard shows (for the gallery card)


def first_image(executed: nbformat.NotebookNode) -> str:
    """The first PNG output (base64, as stored in the notebook), or ""."""
    for cell in executed.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = output.get("data", {}).get("image/png")
            if png:
                return "".join(png) if isinstance(png, list) else str(png)
    return ""


def why_live(executed: nbformat.NotebookNode) -> str:
    """Why this executed notebook needs a live kernel per viewer; "" if a static page will do."""
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return "a cell failed"
            if WIDGET_VIEW in output.get("data", {}):
                return "it has live widgets"
    if executed.metadata.get("voila_publisher", {}).get("live") is True:
        return "its author asked for a live kernel"
    return ""


def export_html(executed: nbformat.NotebookNode, title: str) -> str:
    """The executed notebook as a page without code (as Voila shows it: strip_sources)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(executed, resources={"metadata": {"name": title}})
    return body


async def prerender(notebook_path: Path, kernel_manager, timeout: float, title: str) -> Prerendered:
    """Execute ``notebook_path`` with ``kernel_manager`` (a sandboxed one, not started) and decide.

    The kernel runs in the notebook's version directory, exactly as a viewer's would.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    nb = await asyncio.to_thread(nbformat.read, str(notebook_path), as_version=4)
    client = NotebookClient(nb, km=kernel_manager, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(notebook_path.parent)}})
    try:
        await client.async_execute()
    except (CellExecutionError, DeadKernelError, TimeoutError, RuntimeError) as e:
        return Prerendered(None, f"it did not run to the end ({type(e).__name__})", first_image(nb))
    finally:
        if kernel_manager.has_kernel:
            await kernel_manager.shutdown_kernel(now=True)
    reason = why_live(nb)
    thumbnail = first_image(nb)
    if reason:
        return Prerendered(None, reason, thumbnail)
    return Prerendered(await asyncio.to_thread(export_html, nb, title), "", thumbnail)
