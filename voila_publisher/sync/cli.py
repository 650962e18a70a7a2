"""``jupyter hybrid-sync``: the sync engine from the command line (admins, cron, benchmarks).

    jupyter hybrid-sync --root ~/notebooks --bucket my-bucket           # upload what changed
    jupyter hybrid-sync --root ~/notebooks --restore                    # bring the bucket's files back
    jupyter hybrid-sync --root ~/notebooks analysis/ report.ipynb       # only these paths

Options are the same ``c.BucketSync`` traits the server uses (and the same ``HYBRID_*``
environment variables); they can also live in ``jupyter_hybrid_sync_config.py``.
Exit status: 0 done, 1 finished with errors, 2 bad invocation or configuration.
"""

from __future__ import annotations

import json
import sys

from jupyter_core.application import JupyterApp
from traitlets import Bool, Unicode, default

from voila_publisher.identity import current_username
from voila_publisher.paths import PathOutsideRoot
from voila_publisher.sync.config import BucketSync


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
            if self.restore:
                engine.restore(job, paths, overwrite=self.overwrite)
            else:
                engine.sync(job, paths, delete=self.delete)
        except PathOutsideRoot as e:
            print(f"jupyter hybrid-sync: {e}", file=sys.stderr)
            self.exit(2)
        result = job.to_json()
        if self.json_output:
            print(json.dumps(result, indent=1))
        else:
            print(f"{job.kind} s3://{config.bucket}/{engine.prefix}: {result['message']}")
            for error in result["errors"]:
                print(f"  error: {error['path']}: {error['message']}", file=sys.stderr)
            for path in result["conflicts"]:
                print(f"  conflict (left untouched): {path}", file=sys.stderr)
        self.exit(0 if result["state"] == "done" else 1)


main = launch_new_instance = HybridSyncApp.launch_instance

if __name__ == "__main__":
    main()
