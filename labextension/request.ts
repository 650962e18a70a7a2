/**
 * A typed client of the server extension's REST API that raises typed errors.
 *
 * Every failure becomes a {@link HybridAPIError} (or a subclass) whose message can be
 * shown to a person as it is.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IDashboard,
  IHome,
  IJob,
  IDashboardVersion,
  INotices,
  IPublishRequest,
  IPublishStatus,
  IRestoreRequest,
  ISyncRequest,
  ISyncStatus
} from './types';

/** The server answered with an error (`{"message", "reason"}` per the contract). */
export class HybridAPIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly reason: string
  ) {
    super(message);
    this.name = 'HybridAPIError';
  }
}

/** The server has no such endpoint: the voila_publisher server extension is not enabled. */
export class ExtensionMissingError extends HybridAPIError {
  constructor(endpoint: string) {
    super(
      `This Jupyter server does not provide ${endpoint}: the voila_publisher server extension is not enabled`,
      404,
      'extension-missing'
    );
    this.name = 'ExtensionMissingError';
  }
}

/** The request never got an answer (server stopped, network down). */
export class ServerUnreachableError extends HybridAPIError {
  constructor(detail: string) {
    super(
      `The Jupyter server could not be reached (${detail})`,
      0,
      'unreachable'
    );
    this.name = 'ServerUnreachableError';
  }
}

/**
 * Call `/hybrid/{endPoint}` on the Jupyter server and return the parsed JSON body.
 */
export async function requestAPI<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'hybrid', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerUnreachableError(
      error instanceof Error ? error.message : String(error)
    );
  }
  const text = await response.text();
  let body: any = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  if (!response.ok) {
    if (body && typeof body.message === 'string' && body.message) {
      throw new HybridAPIError(
        body.message,
        response.status,
        typeof body.reason === 'string' ? body.reason : 'error'
      );
    }
    if (response.status === 404) {
      throw new ExtensionMissingError(`/hybrid/${endPoint}`);
    }
    throw new HybridAPIError(
      `The server answered ${response.status} ${response.statusText}`.trim(),
      response.status,
      'http-error'
    );
  }
  return body as T;
}

function post(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body) };
}

/** One method per endpoint of docs/contracts.md. */
export class HybridClient {
  constructor(
    private readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()
  ) {}

  syncStatus(): Promise<ISyncStatus> {
    return requestAPI<ISyncStatus>('sync', {}, this.settings);
  }

  startSync(request: ISyncRequest = {}): Promise<IJob> {
    return requestAPI<IJob>('sync', post({ delete: false, ...request }), this.settings);
  }

  syncJob(id: string): Promise<IJob> {
    return requestAPI<IJob>(`sync/${encodeURIComponent(id)}`, {}, this.settings);
  }

  startRestore(request: IRestoreRequest = {}): Promise<IJob> {
    return requestAPI<IJob>(
      'restore',
      post({ overwrite: false, ...request }),
      this.settings
    );
  }

  restoreJob(id: string): Promise<IJob> {
    return requestAPI<IJob>(`restore/${encodeURIComponent(id)}`, {}, this.settings);
  }

  /** The job's current state, from the endpoint of its kind. */
  job(job: Pick<IJob, 'id' | 'kind'>): Promise<IJob> {
    return job.kind === 'restore' ? this.restoreJob(job.id) : this.syncJob(job.id);
  }

  home(): Promise<IHome> {
    return requestAPI<IHome>('home', {}, this.settings);
  }

  /** AWS's notices about this server (spot interruption, rebalance), as the node reported them. */
  notices(): Promise<INotices> {
    return requestAPI<INotices>('notices', {}, this.settings);
  }

  /** Ask the hub (through this server) to stop this server. */
  stopServer(): Promise<{ stopping: boolean }> {
    return requestAPI<{ stopping: boolean }>('stop', post({}), this.settings);
  }

  publishStatus(): Promise<IPublishStatus> {
    return requestAPI<IPublishStatus>('publish', {}, this.settings);
  }

  publish(request: IPublishRequest): Promise<IDashboard> {
    return requestAPI<IDashboard>('publish', post(request), this.settings);
  }

  /** The dashboard name the server gives the notebook at `path` (never computed here). */
  async slugFor(path: string): Promise<string> {
    const answer = await requestAPI<{ slug: string }>(
      `publish/_slug?path=${encodeURIComponent(path)}`,
      {},
      this.settings
    );
    return answer.slug;
  }

  versions(slug: string): Promise<IDashboardVersion[]> {
    return requestAPI<IDashboardVersion[]>(
      `publish/${encodeURIComponent(slug)}/versions`,
      {},
      this.settings
    );
  }

  rollback(slug: string, version: number): Promise<IDashboard> {
    return requestAPI<IDashboard>(
      `publish/${encodeURIComponent(slug)}/versions`,
      post({ rollback: version }),
      this.settings
    );
  }

  async unpublish(slug: string): Promise<void> {
    await requestAPI<void>(
      `publish/${encodeURIComponent(slug)}`,
      { method: 'DELETE' },
      this.settings
    );
  }
}
