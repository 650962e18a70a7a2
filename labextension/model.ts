/**
 * What the extension knows about the server: whether sync and publish are set up, the
 * job being followed, the last finished job and the published dashboards.
 *
 * Views (commands, status bar) read it and listen to `changed`; only the model calls the
 * server.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { ExtensionMissingError, HybridClient } from './request';
import { IPublishChoice } from './publishDialog';
import { IDashboard, IDashboardVersion, IHome, IJob, IPublishStatus, ISyncStatus } from './types';

/** Whether a feature can be used, and if not, why (shown as the buttons' tooltip). */
export type Availability =
  | { state: 'checking' }
  | { state: 'ready' }
  | { state: 'unavailable'; reason: string };

const POLL_FIRST_MS = 250;
const POLL_MAX_MS = 2000;

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

function unavailableReason(
  feature: string,
  missing: string | null
): Availability {
  // The server's text already names the setting (and who must set it).
  const what = missing ? missing.replace(/\.$/, '') : 'ask the administrator to configure it';
  return { state: 'unavailable', reason: `${feature} is off: ${what}.` };
}

function failedCheck(feature: string, error: unknown): Availability {
  if (error instanceof ExtensionMissingError) {
    return {
      state: 'unavailable',
      reason: `${feature} is not available: the voila_publisher server extension is not enabled on this Jupyter server.`
    };
  }
  const detail = error instanceof Error ? error.message : String(error);
  return { state: 'unavailable', reason: `${feature} is not available right now: ${detail}` };
}

export class HybridModel {
  constructor(readonly client: HybridClient = new HybridClient()) {}

  /** Emitted whenever anything below changes. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get sync(): Availability {
    return this._sync;
  }

  get publishing(): Availability {
    return this._publish;
  }

  /** The last answer of GET /hybrid/sync (bucket, prefix), if any. */
  get syncInfo(): ISyncStatus | null {
    return this._syncInfo;
  }

  /** The sync or restore job being followed right now. */
  get activeJob(): IJob | null {
    return this._activeJob;
  }

  /** The last job that finished (here or in a server-side periodic sync). */
  get lastJob(): IJob | null {
    return this._lastJob;
  }

  /** The error of the last attempt to start or follow a job, cleared by the next job. */
  get lastError(): string | null {
    return this._lastError;
  }

  get dashboards(): readonly IDashboard[] {
    return this._dashboards;
  }

  /** Where the sync lands, e.g. `s3://bucket/users/alice/`. */
  get destination(): string | null {
    const info = this._syncInfo;
    if (!info || !info.bucket) {
      return null;
    }
    return `s3://${info.bucket}/${info.prefix ?? ''}`;
  }

  /** Ask the server whether sync and publish are set up (both in parallel). */
  async refresh(): Promise<void> {
    await Promise.all([this.refreshSync(), this.refreshPublish(), this.refreshHome()]);
  }

  /** Where this server's work lives, or null when the server cannot say. */
  get home(): IHome | null {
    return this._home;
  }

  async refreshHome(): Promise<IHome | null> {
    try {
      this._home = await this.client.home();
    } catch {
      this._home = null; // an older server extension: the status bar shows the sync alone
    }
    this._changed.emit();
    return this._home;
  }

  async refreshSync(): Promise<void> {
    let status: ISyncStatus;
    try {
      status = await this.client.syncStatus();
    } catch (error) {
      this._sync = failedCheck('Sync to bucket', error);
      this._changed.emit();
      return;
    }
    this._syncInfo = status;
    this._sync = status.configured
      ? { state: 'ready' }
      : unavailableReason('Sync to bucket', status.missing);
    if (!this._activeJob && status.last) {
      this._lastJob = status.last;
    }
    this._changed.emit();
    if (!this._activeJob && status.current) {
      // A sync the server runs by itself (periodic, or started from another tab): follow
      // it quietly so the status bar shows it.
      this.follow(status.current).catch(() => undefined);
    }
  }

  async refreshPublish(): Promise<void> {
    let status: IPublishStatus;
    try {
      status = await this.client.publishStatus();
    } catch (error) {
      this._publish = failedCheck('Publishing to Voila', error);
      this._changed.emit();
      return;
    }
    this._dashboards = status.dashboards ?? [];
    this._publish = status.configured
      ? { state: 'ready' }
      : unavailableReason('Publishing to Voila', status.missing);
    this._changed.emit();
  }

  /**
   * Start a job with `start` and poll it until it ends, calling `onUpdate` with each state.
   * Resolves with the finished job (state `done` or `error`); rejects when the server
   * refuses the job or cannot be reached.
   */
  async runJob(
    start: () => Promise<IJob>,
    onUpdate: (job: IJob) => void = () => undefined
  ): Promise<IJob> {
    let job: IJob;
    try {
      job = await start();
    } catch (error) {
      this._lastError = error instanceof Error ? error.message : String(error);
      this._changed.emit();
      throw error;
    }
    this._lastError = null;
    return this.follow(job, onUpdate);
  }

  /** Poll a job the server already runs until it ends. */
  async follow(job: IJob, onUpdate: (job: IJob) => void = () => undefined): Promise<IJob> {
    this._activeJob = job;
    this._changed.emit();
    onUpdate(job);
    let delay = POLL_FIRST_MS;
    try {
      while (job.state === 'running') {
        await sleep(delay);
        delay = Math.min(delay * 2, POLL_MAX_MS);
        job = await this.client.job(job);
        if (this._activeJob?.id === job.id) {
          this._activeJob = job;
          this._changed.emit();
        }
        onUpdate(job);
      }
    } catch (error) {
      this._lastError = error instanceof Error ? error.message : String(error);
      throw error;
    } finally {
      if (this._activeJob?.id === job.id) {
        this._activeJob = null;
      }
      this._changed.emit();
    }
    this._lastJob = job;
    this._lastError = job.state === 'error' ? job.message ?? 'the job failed' : null;
    this._changed.emit();
    void this.refreshHome(); // what is unsynced changed with the job
    return job;
  }

  /**
   * The dashboard published from the notebook at `path`, if any: by the path the server
   * recorded, else by the name the server gives that notebook (the Lab never computes one).
   */
  async dashboardFor(path: string): Promise<IDashboard | undefined> {
    const known = this._publishedFrom.get(path);
    const found =
      this._dashboards.find(d => d.path === path) ??
      this._dashboards.find(d => known !== undefined && d.slug === known);
    if (found || !this._dashboards.some(d => d.path === undefined)) {
      return found;
    }
    const slug = await this.client.slugFor(path);
    return this._dashboards.find(d => d.path === undefined && d.slug === slug);
  }

  async publish(path: string, stripHidden: boolean, choice?: IPublishChoice): Promise<IDashboard> {
    const dashboard = await this.client.publish({
      path,
      strip_hidden: stripHidden,
      ...(choice ? { visibility: choice.visibility, new_link: choice.newLink } : {})
    });
    this._publishedFrom.set(path, dashboard.slug);
    this._dashboards = [
      ...this._dashboards.filter(d => d.slug !== dashboard.slug),
      dashboard
    ];
    this._changed.emit();
    return dashboard;
  }

  versions(dashboard: IDashboard): Promise<IDashboardVersion[]> {
    return this.client.versions(dashboard.slug);
  }

  /** Make an earlier version current again (the host publishes its content as a new version). */
  async rollback(dashboard: IDashboard, version: number): Promise<IDashboard> {
    const updated = await this.client.rollback(dashboard.slug, version);
    this._dashboards = [...this._dashboards.filter(d => d.slug !== updated.slug), updated];
    this._changed.emit();
    return updated;
  }

  async unpublish(dashboard: IDashboard): Promise<void> {
    await this.client.unpublish(dashboard.slug);
    this._dashboards = this._dashboards.filter(d => d.slug !== dashboard.slug);
    for (const [path, slug] of this._publishedFrom) {
      if (slug === dashboard.slug) {
        this._publishedFrom.delete(path);
      }
    }
    this._changed.emit();
  }

  private _changed = new Signal<this, void>(this);
  private _sync: Availability = { state: 'checking' };
  private _publish: Availability = { state: 'checking' };
  private _syncInfo: ISyncStatus | null = null;
  private _home: IHome | null = null;
  private _activeJob: IJob | null = null;
  private _lastJob: IJob | null = null;
  private _lastError: string | null = null;
  private _dashboards: IDashboard[] = [];
  private _publishedFrom = new Map<string, string>();
}
