/**
 * Tells the researcher, once per server start, what the restore at start could not settle:
 * files that differed from the bucket (the bucket's copies are beside them) or a failed restore.
 */
import { Notification } from '@jupyterlab/apputils';

import { HybridModel } from './model';
import { IRestoreAtStart } from './types';

const SEEN_KEY = 'jupyter-hybrid-cloud:restore-at-start-seen';
const LISTED = 5;

/** The sentence for a report, or null when there is nothing to say. */
export function restoreReportText(report: IRestoreAtStart): string | null {
  const copies = report.conflict_copies;
  if (copies.length > 0) {
    // Short: a toast shows about 140 characters (the notification centre keeps it whole).
    const listed = copies
      .slice(0, LISTED)
      .map(c => c.path)
      .join(', ');
    const more = copies.length > LISTED ? ` and ${copies.length - LISTED} more` : '';
    const files = copies.length === 1 ? 'file differed' : 'files differed';
    const beside = copies.length === 1 ? "the bucket's version is" : "the bucket's versions are";
    return (
      `At start, ${copies.length} ${files} from the bucket: ${listed}${more} ` +
      `(yours kept; ${beside} beside it as a “bucket copy”).`
    );
  }
  if (report.state !== 'done') {
    return `Restoring your notebooks from the bucket at start did not finish: ${report.message}`;
  }
  return null;
}

/** Announce the model's restore report once (per report, across reloads of the page). */
export function announceRestoreAtStart(model: HybridModel): void {
  const announce = () => {
    const report = model.syncInfo?.restored_at_start;
    if (!report) {
      return;
    }
    const key = String(report.reported);
    if (window.localStorage.getItem(SEEN_KEY) === key) {
      return;
    }
    const text = restoreReportText(report);
    window.localStorage.setItem(SEEN_KEY, key);
    if (text) {
      Notification.warning(text, { autoClose: false });
    }
  };
  model.changed.connect(announce);
  announce();
}
