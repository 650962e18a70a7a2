"""Which executed dashboards may be served as a static page, and how the store keeps those pages."""

from __future__ import annotations

import nbformat

from voila_publisher.host.prerender import WIDGET_VIEW, export_html, why_live
from voila_publisher.host.store import DashboardStore


def _executed(*outputs, metadata=None):
    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    cell = nbformat.v4.new_code_cell("x", outputs=[nbformat.from_dict(o) for o in outputs])
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    return nb


def test_plain_outputs_make_a_static_page_and_widgets_errors_or_the_author_keep_it_live():
    text = {"output_type": "stream", "name": "stdout", "text": "42\n"}
    image = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}, "metadata": {}}
    widget = {"output_type": "display_data", "data": {WIDGET_VIEW: {"model_id": "m1", "version_major": 2, "version_minor": 0}, "text/plain": "IntSlider"}, "metadata": {}}
    error = {"output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []}
    assert why_live(_executed(text, image)) == ""
    assert why_live(_executed(text, widget)) == "it has live widgets"
    assert why_live(_executed(error)) == "a cell failed"
    assert why_live(_executed(text, metadata={"voila_publisher": {"live": True}})) == "its author asked for a live kernel"


def test_the_static_page_shows_outputs_and_no_code():
    nb = _executed({"output_type": "stream", "name": "stdout", "text": "answer 42\n"})
    nb.cells[1].source = "SECRET_SOURCE = 1"
    html = export_html(nb, "Title")
    assert "answer 42" in html and "SECRET_SOURCE" not in html


def test_static_pages_follow_their_versions(tmp_path):
    store = DashboardStore(tmp_path / "d", versions_kept=1, grace_seconds=0, static_root=tmp_path / "s")
    v1 = store.publish("alice", "r", b"{}", "R")
    assert store.static_page("alice", "r", 1) is None
    assert store.save_static_page("alice", "r", 1, b"<p>one</p>")
    assert store.static_page("alice", "r", 1) == "alice/r/v000001.html"
    store.publish("alice", "r", b"{}", "R")  # v1 replaced and pruned at once (grace 0)
    assert store.static_page("alice", "r", 1) is None and not (tmp_path / "s/alice/r/v000001.html").exists()
    # A page that arrives after its version is gone is not kept.
    assert not store.save_static_page("alice", "r", v1.version, b"<p>late</p>")
    assert store.save_static_page("alice", "r", 2, b"<p>two</p>")
    store.unpublish("alice", "r")
    assert not (tmp_path / "s" / "alice" / "r").exists()
