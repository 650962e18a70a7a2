/**
 * Long operations shown through JupyterLab's notifications: one notification per job that
 * turns from "in progress" (with a progress bar) into its result.
 */
import { Clipboard, Notification } from '@jupyterlab/apputils';

import { progressFraction, progressMessage, resultMessage } from './messages';
import { HybridModel } from './model';
import { IDashboard, IJob } from './types';

/** Actions offered with a failure, e.g. "Try again". */
export type RetryAction = () => void;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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
    Notification.update({
      id,
      message: `${what} failed: ${errorText(error)}`,
      type: 'error',
      autoClose: false,
      actions: [{ label: 'Try again', callback: retry }]
    });
    return undefined;
  }
  const { type, message } = resultMessage(finished, model.destination);
  Notification.update({
    id,
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
  retry: RetryAction
): Promise<IDashboard | undefined> {
  const name = path.split('/').pop() ?? path;
  const id = Notification.emit(`Publishing “${name}” to Voila…`, 'in-progress', {
    autoClose: false
  });
  let dashboard: IDashboard;
  try {
    dashboard = await model.publish(path, stripHidden);
  } catch (error) {
    Notification.update({
      id,
      message: `Could not publish “${name}”: ${errorText(error)}`,
      type: 'error',
      autoClose: false,
      actions: [{ label: 'Try again', callback: retry }]
    });
    return undefined;
  }
  Notification.update({
    id,
    message: `“${dashboard.title || name}” is published (version ${dashboard.version}). Anyone with the link can view it.`,
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
