/**
 * Long operations shown through JupyterLab's notifications: one notification per job that
 * turns from "in progress" (with a progress bar) into its result.
 */
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { ReadonlyJSONValue } from '@lumino/coreutils';

import { progressFraction, progressMessage, resultMessage } from './messages';
import { HybridModel } from './model';
import { IPublishChoice } from './publishDialog';
import { IDashboard, IJob } from './types';

/** Actions offered with a failure, e.g. "Try again". */
export type RetryAction = () => void;

type FinalState = Omit<Notification.IUpdate<ReadonlyJSONValue>, 'id'>;

/** An in-progress notification stays at least this long before it turns into its result. */
const MIN_VISIBLE_MS = 800;
/** When the result is said a second time (see `settle`). */
const RESAY_MS = 1500;

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/**
 * Turn notification `id` (emitted at `emittedAt`) into its final state. JupyterLab can drop
 * an update that reaches a toast still being created (the first toast of a page loads the
 * toast library lazily; jupyterlab/jupyterlab#15558), which would leave "in progress" on
 * screen: so the result waits until the toast had time to appear, and is said once more.
 */
async function settle(id: string, emittedAt: number, final: FinalState): Promise<void> {
  const wait = MIN_VISIBLE_MS - (Date.now() - emittedAt);
  if (wait > 0) {
    await sleep(wait);
  }
  Notification.update({ id, ...final });
  // Returns false (does nothing) once the person has dismissed it.
  setTimeout(() => Notification.update({ id, ...final }), RESAY_MS);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failure the person must read: stays until dismissed. */
export function notifyFailure(what: string, error: unknown): void {
  Notification.error(`${what}: ${errorText(error)}`, { autoClose: false });
}

/**
 * Start a sync or restore with `start`, follow it in a notification, and resolve with the
 * finished job (or undefined when it could not be started or followed: that is shown too).
 */
export async function runJobWithNotification(
  model: HybridModel,
  kind: 'sync' | 'restore',
  start: () => Promise<IJob>,
  retry: RetryAction
): Promise<IJob | undefined> {
  const starting = kind === 'restore' ? 'Restoring from bucket…' : 'Syncing to bucket…';
  const id = Notification.emit(starting, 'in-progress', { autoClose: false });
  const emittedAt = Date.now();
  let finished: IJob;
  try {
    finished = await model.runJob(start, job => {
      if (job.state === 'running') {
        Notification.update({
          id,
          message: progressMessage(job),
          type: 'in-progress',
          progress: progressFraction(job),
          autoClose: false
        });
      }
    });
  } catch (error) {
    const what = kind === 'restore' ? 'Restore from bucket' : 'Sync to bucket';
    await settle(id, emittedAt, {
      message: `${what} failed: ${errorText(error)}`,
      type: 'error',
      autoClose: false,
      actions: [{ label: 'Try again', callback: retry }]
    });
    return undefined;
  }
  const { type, message } = resultMessage(finished, model.destination);
  await settle(id, emittedAt, {
    message,
    type,
    progress: undefined,
    autoClose: type === 'success' ? 6000 : false,
    actions: type === 'error' ? [{ label: 'Try again', callback: retry }] : []
  });
  return finished;
}

export function openInNewTab(url: string): void {
  window.open(url, '_blank', 'noopener');
}

/** Publish `path` in a notification that ends with a link to the public dashboard. */
export async function publishWithNotification(
  model: HybridModel,
  path: string,
  stripHidden: boolean,
  retry: RetryAction,
  choice?: IPublishChoice
): Promise<IDashboard | undefined> {
  const name = path.split('/').pop() ?? path;
  const id = Notification.emit(`Publishing “${name}” to Voila…`, 'in-progress', {
    autoClose: false
  });
  const emittedAt = Date.now();
  let dashboard: IDashboard;
  try {
    dashboard = await model.publish(path, stripHidden, choice);
  } catch (error) {
    await settle(id, emittedAt, {
      message: `Could not publish “${name}”: ${errorText(error)}`,
      type: 'error',
      autoClose: false,
      actions: [{ label: 'Try again', callback: retry }]
    });
    return undefined;
  }
  await settle(id, emittedAt, {
    message:
      dashboard.visibility === 'unlisted'
        ? `“${dashboard.title || name}” is published as unlisted (version ${dashboard.version}): ` +
          'not in the gallery, only people you give the link to can view it.'
        : `“${dashboard.title || name}” is published (version ${dashboard.version}). ` +
          'It is listed in the gallery and anyone with the link can view it.',
    type: 'success',
    autoClose: false,
    actions: [
      {
        label: 'Open dashboard',
        callback: () => openInNewTab(dashboard.url),
        displayType: 'accent'
      },
      {
        label: 'Copy link',
        callback: event => {
          // Keep the notification open: the person may still want to open the link.
          event.preventDefault();
          Clipboard.copyToSystem(dashboard.url);
        }
      }
    ]
  });
  return dashboard;
}
