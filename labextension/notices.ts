/**
 * AWS's notices about this spot server, told to the researcher: the node's spot watch reports
 * them to the server (GET /hybrid/notices), and this shows each as a notification that stays
 * until dismissed, updated once the node's final sync has run. On a server the node does not
 * watch (on-demand, Slurm, OpenStack) the first answer says so and nothing more is asked.
 */
import { Notification } from '@jupyterlab/apputils';

import { ExtensionMissingError, HybridClient } from './request';
import { INodeNotice, INotices } from './types';

/** As often as the node looks at its metadata: AWS gives two minutes in all. */
const POLL_MS = 2000;
/** An update can be dropped while the first toast of a page is still being created. */
const RESAY_MS = 1500;

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** "12:04" in the researcher's own time zone, from a UTC time of the notice. */
export function clockTime(iso: string): string {
  const moment = new Date(iso);
  return `${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
}

function files(n: number): string {
  return n === 1 ? '1 file' : `${n.toLocaleString('en-US')} files`;
}

/** The sentence for an interruption notice (kept under the toast's 140 characters). */
export function interruptionText(notice: INodeNotice): string {
  const verb =
    notice.action === 'stop' ? 'stopped' : notice.action === 'hibernate' ? 'hibernated' : 'reclaimed';
  const head = `This server is ${verb} by AWS at ${clockTime(notice.time)} (spot interruption)`;
  const sync = notice.sync;
  switch (sync.state) {
    case 'running':
      return `${head}; your notebooks are being synced to the bucket now.`;
    case 'done':
      return `${head}; your notebooks were synced at ${clockTime(sync.finished ?? notice.time)}, ${files(sync.files)}.`;
    case 'error':
      return `${head}; ${files(sync.errors)} could not be synced: download what you need now.`;
    case 'not-configured':
      return `${head}; no bucket is set up: download what you need now.`;
    default:
      return `${head}; the sync to the bucket did not finish: download what you need now.`;
  }
}

/** The sentence for a rebalance recommendation. */
export function rebalanceText(notice: INodeNotice): string {
  const head = `AWS may reclaim this spot server soon (rebalance recommendation at ${clockTime(notice.time)})`;
  if (notice.sync.state === 'done') {
    return `${head}; your notebooks were synced at ${clockTime(notice.sync.finished ?? notice.time)}, ${files(notice.sync.files)}.`;
  }
  return `${head}; sync your notebooks to the bucket.`;
}

function kindOf(notice: INodeNotice): Notification.TypeOptions {
  if (notice.kind === 'rebalance') {
    return 'info';
  }
  return ['running', 'done'].includes(notice.sync.state) ? 'warning' : 'error';
}

/** One notification per kind of notice, emitted once and updated as the node reports more. */
class NoticeToast {
  show(notice: INodeNotice, text: string): void {
    if (text === this._text) {
      return;
    }
    this._text = text;
    const type = kindOf(notice);
    if (this._id === null) {
      this._id = Notification.emit(text, type, { autoClose: false });
      return;
    }
    const update = { id: this._id, message: text, type, autoClose: false as const };
    if (!Notification.update(update)) {
      return; // dismissed by the researcher: the next change is not forced on them again
    }
    setTimeout(() => Notification.update(update), RESAY_MS);
  }

  private _id: string | null = null;
  private _text = '';
}

/**
 * Poll the server's notices while the node watches for them; show what arrives. `synced` is
 * called when a notice's sync has finished (the status bar then asks for the new sync state).
 */
export function watchNotices(client: HybridClient, synced: () => void = () => undefined): void {
  const interruption = new NoticeToast();
  const rebalance = new NoticeToast();
  let lastFinished = '';

  const look = async (): Promise<void> => {
    let answer: INotices;
    try {
      answer = await client.notices();
    } catch (error) {
      if (error instanceof ExtensionMissingError) {
        return; // an older server without the endpoint: nothing will come
      }
      window.setTimeout(() => void look(), POLL_MS * 5); // the server is restarting or going away
      return;
    }
    if (answer.rebalance) {
      rebalance.show(answer.rebalance, rebalanceText(answer.rebalance));
    }
    if (answer.interruption) {
      interruption.show(answer.interruption, interruptionText(answer.interruption));
    }
    const finished = [answer.interruption, answer.rebalance]
      .filter((n): n is INodeNotice => n !== null && n.sync.state !== 'running')
      .map(n => `${n.kind}:${n.sync.finished}`)
      .join(',');
    if (finished !== lastFinished) {
      lastFinished = finished;
      if (finished) {
        synced();
      }
    }
    if (answer.watched) {
      window.setTimeout(() => void look(), POLL_MS);
    }
  };
  void look();
}
