"""``jupyter hybrid-sync``: the sync engine from the command line (admins, cron, benchmarks).

    jupyter hybrid-sync --root ~/notebooks --bucket my-bucket           # upload what changed
    jupyter hybrid-sync --root ~/notebooks --restore                    # bring the bucket's files back
    jupyter hybrid-sync --root ~/notebooks analysis/ report.ipynb       # only these paths
    jupyter hybrid-sync --restore --keep-conflict-copies --progress     # what a node runs at start

Options are the same ``c.BucketSync`` traits the server uses (and the same ``HYBRID_*``
environment variables); they can also live in ``jupyter_hybrid_sync_config.py``.
Exit status: 0 done, 1 finished with errors, 2 bad invocation or configuration.
"""

from __future__ import annotations

import json
import sys
import threading

from jupyter_core.application import JupyterApp
from traitlets import Bool, Float, Unicode, default

from voila_publisher.identity import current_username
from voila_publisher.paths import PathOutsideRoot
from voila_publisher.sync.config import BucketSync
from voila_publisher.sync.listing import resolve_selection


class HybridSyncApp(JupyterApp):
    name = "jupyter-hybrid-sync"
    description = "Sync a notebook directory with its S3 prefix (upload by content, restore without losing local work)."
    classes = [BucketSync]

    root_dir = Unicode(".", help="The notebook root to sync.").tag(config=True)
    username = Unicode(help="User name for {username} in the prefix template. Default: $JUPYTERHUB_USER or the login name.").tag(
        config=True
    )
    restore = Bool(False, help="Download from the bucket instead of uploading.").tag(config=True)
    delete = Bool(False, help="Also delete remote files that no longer exist locally (never done otherwise).").tag(config=True)
    overwrite = Bool(False, help="On restore, replace local files that differ from the bucket's copy.").tag(config=True)
    json_output = Bool(False, help="Print the finished job as JSON.").tag(config=True)
    keep_conflict_copies = Bool(
        False, help="On restore, write the bucket's version of a conflicting file beside it ('name (bucket copy XXXX).ipynb')."
    ).tag(config=True)
    progress = Bool(
        False, help="Print the job's progress as one JSON object per line while it runs (the node agent reads them)."
    ).tag(config=True)
    progress_interval = Float(0.5, help="Seconds between --progress lines.").tag(config=True)

    @default("username")
    def _username_default(self):
        return current_username()

    aliases = {
        "root": "HybridSyncApp.root_dir",
        "user": "HybridSyncApp.username",
        "bucket": "BucketSync.bucket",
        "prefix": "BucketSync.prefix_template",
        "endpoint-url": "BucketSync.endpoint_url",
        "region": "BucketSync.region",
        "concurrency": "BucketSync.concurrency",
        "exclude": "BucketSync.excludes",
        "log-level": "Application.log_level",
        "config": "JupyterApp.config_file",
    }
    flags = {
        "restore": ({"HybridSyncApp": {"restore": True}}, "Download from the bucket instead of uploading."),
        "delete": ({"HybridSyncApp": {"delete": True}}, "Delete remote files that were deleted locally."),
        "overwrite": ({"HybridSyncApp": {"overwrite": True}}, "On restore, replace local files that differ."),
        "json": ({"HybridSyncApp": {"json_output": True}}, "Print the finished job as JSON."),
        "keep-conflict-copies": (
            {"HybridSyncApp": {"keep_conflict_copies": True}},
            "On restore, keep the bucket's version of a conflicting file beside it.",
        ),
        "progress": ({"HybridSyncApp": {"progress": True}}, "Print progress as JSON lines while running."),
    }

    def start(self):
        from voila_publisher.sync.engine import SyncEngine
        from voila_publisher.sync.job import Job

        config = BucketSync(parent=self)
        missing = config.missing()
        if missing:
            print(f"jupyter hybrid-sync: {missing}", file=sys.stderr)
            self.exit(2)
        engine = SyncEngine(config, self.root_dir, self.username)
        paths = list(self.extra_args) or None
        job = Job("restore" if self.restore else "sync")
        try:
            resolve_selection(engine.root, paths)
        except PathOutsideRoot as e:
            print(f"jupyter hybrid-sync: {e}", file=sys.stderr)
            self.exit(2)
        if self.restore:
            work = lambda: engine.restore(job, paths, overwrite=self.overwrite, keep_conflict_copies=self.keep_conflict_copies)  # noqa: E731
        else:
            work = lambda: engine.sync(job, paths, delete=self.delete)  # noqa: E731
        if self.progress:
            self._run_with_progress(job, work)
        else:
            work()
        result = job.to_json()
        if self.json_output:
            print(json.dumps(result, indent=None if self.progress else 1))
        else:
            print(f"{job.kind} s3://{config.bucket}/{engine.prefix}: {result['message']}")
            for error in result["errors"]:
                print(f"  error: {error['path']}: {error['message']}", file=sys.stderr)
            for path in result["conflicts"]:
                print(f"  conflict (left untouched): {path}", file=sys.stderr)
        self.exit(0 if result["state"] == "done" else 1)

    def _run_with_progress(self, job, work) -> None:
        """Run ``work`` in a thread and print a progress line every ``progress_interval`` seconds."""
        failure: list[BaseException] = []

        def run():
            try:
                work()
            except BaseException as e:  # reported below, on the main thread
                failure.append(e)
                if job.running:
                    job.finish(f"{job.kind} failed: {type(e).__name__}: {e}", failed=True, reason="internal-error")

        worker = threading.Thread(target=run, name="hybrid-sync-job", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(self.progress_interval)
            snap = job.to_json()
            line = {k: snap[k] for k in ("state", "files_done", "files_total", "bytes_done", "bytes_total", "message")}
            print(json.dumps(line), flush=True)
        if failure:
            raise failure[0]


main = launch_new_instance = HybridSyncApp.launch_instance

if __name__ == "__main__":
    main()
