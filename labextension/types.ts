/**
 * The JSON shapes of the single-user server's REST API (docs/contracts.md).
 */

export type JobState = 'running' | 'done' | 'error';

/** A sync or restore run, as reported by GET /hybrid/sync/{id}. */
export interface IJob {
  id: string;
  kind: 'sync' | 'restore';
  state: JobState;
  files_total: number;
  files_done: number;
  bytes_total: number;
  bytes_done: number;
  uploaded: number;
  downloaded: number;
  skipped: number;
  deleted: number;
  conflicts: string[];
  errors: { path: string; message: string }[];
  message: string | null;
  /** ISO 8601 text or seconds since the epoch. */
  started: string | number | null;
  finished: string | number | null;
}

export interface ISyncStatus {
  configured: boolean;
  /** What the administrator must set when `configured` is false. */
  missing: string | null;
  bucket: string | null;
  prefix: string | null;
  current: IJob | null;
  last: IJob | null;
  /** What the node's restore before the server opened left (restore_on_start), if any. */
  restored_at_start?: IRestoreAtStart | null;
}

/** The restore a node ran before this server opened (docs/contracts.md). */
export interface IRestoreAtStart {
  state: string;
  message: string;
  downloaded: number;
  /** The bucket's version of each conflicting file, kept beside it. */
  conflict_copies: { path: string; copy: string }[];
  errors: number;
  /** Seconds since the epoch: tells one report from the next. */
  reported: number;
}

/** What the node's final sync did after a notice (docs/ec2.md, "Spot interruption notices"). */
export interface INoticeSync {
  state: 'running' | 'done' | 'error' | 'timeout' | 'failed' | 'not-configured';
  /** Files the bucket holds as they are here (sent now or unchanged). */
  files: number;
  uploaded: number;
  errors: number;
  /** UTC, e.g. "2026-12-07T12:02:03Z"; null until the sync is done. */
  finished: string | null;
}

/** AWS's notice about this spot server, as the node reported it (GET /hybrid/notices). */
export interface INodeNotice {
  kind: 'interruption' | 'rebalance';
  /** interruption: what AWS will do at `time`. */
  action?: 'terminate' | 'stop' | 'hibernate';
  /** UTC: when AWS reclaims the server (interruption) or posted the recommendation (rebalance). */
  time: string;
  noticed: string | null;
  sync: INoticeSync;
}

export interface INotices {
  /** Whether the node watches for notices at all (a spot server); if not, nothing comes. */
  watched: boolean;
  interruption: INodeNotice | null;
  rebalance: INodeNotice | null;
}

/** Public dashboards are in the gallery; unlisted ones only open through their link. */
export type Visibility = 'public' | 'unlisted';

export interface IDashboard {
  owner: string;
  slug: string;
  title: string;
  /** The public address viewers open. */
  url: string;
  version: number | string;
  published: string | number | null;
  /** The notebook it was published from, when the server reports it. */
  path?: string;
  visibility?: Visibility;
}

/** One version of a dashboard still kept on the public host. */
export interface IDashboardVersion {
  version: number;
  published: string;
  title: string;
  current: boolean;
}

export interface IPublishStatus {
  configured: boolean;
  missing: string | null;
  dashboards: IDashboard[];
}

export interface ISyncRequest {
  paths?: string[];
  delete?: boolean;
}

export interface IRestoreRequest {
  paths?: string[];
  overwrite?: boolean;
}

export interface IPublishRequest {
  path: string;
  strip_hidden?: boolean;
  visibility?: Visibility;
  new_link?: boolean;
}

/** Where this server's work lives (GET /hybrid/home). */
export interface IHome {
  kind: 'persistent' | 'ephemeral' | 'shared' | 'unknown';
  label: string;
  size_bytes: number;
  used_bytes: number;
  files: number;
  /** Files the last sync or restore did not record as they are now. */
  unsynced: number;
  unsynced_examples: string[];
  last_sync: string | null;
}
