"""What the public host's HTTP handlers may use, and nothing more.

The handlers (:mod:`voila_publisher.host.handlers`) get a :class:`HostContext` instead of the
whole service, so they cannot reach Voila's process, the configuration or the secret's file;
the service (:mod:`voila_publisher.host.app`) builds the context and owns everything else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from voila_publisher.host.store import DashboardStore, StoredDashboard


@dataclass(frozen=True)
class UploadLimits:
    max_notebook_size: int  # bytes
    max_data_size: int  # bytes, all data files of one dashboard together
    max_data_files: int


@dataclass(frozen=True)
class HostContext:
    store: DashboardStore
    secret: str  # the shared secret publish tokens are checked against
    public_url: str  # base URL of the answers' dashboard links ("" for paths only)
    gallery_title: str
    limits: UploadLimits
    log: logging.Logger
    render: Callable[..., str]  # render(template_name, **context) -> HTML
    #: Awaited with the new version after a publish, before answering (static page, pre-heating).
    after_publish: Callable[[StoredDashboard], Awaitable[None]]
    #: Called after an unpublish (e.g. releasing the version's pre-heated kernels).
    after_unpublish: Callable[[], None]
    voila_serving: Callable[[], Awaitable[bool]]
    #: Secrets still accepted while the shared secret is rotated (docs/operations.md).
    previous_secrets: tuple[str, ...] = ()
