/**
 * The words people read: progress and results of jobs, sizes and times. Pure functions,
 * so the wording lives in one place.
 */
import { IJob } from './types';

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) {
    return `${Math.max(0, Math.round(bytes || 0))} B`;
  }
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** A job timestamp (ISO text or epoch seconds) as a Date. */
export function jobTime(value: string | number | null | undefined): Date | null {
  if (value === null || value === undefined || value === '') {
    return null;
  }
  const date =
    typeof value === 'number'
      ? new Date(value < 1e12 ? value * 1000 : value)
      : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function verb(job: IJob): string {
  return job.kind === 'restore' ? 'Restoring from bucket' : 'Syncing to bucket';
}

/** "Syncing to bucket: 3 of 12 files (1.2 MB of 5.0 MB)" */
export function progressMessage(job: IJob): string {
  if (!job.files_total) {
    return `${verb(job)}: looking for changes…`;
  }
  const bytes = job.bytes_total
    ? ` (${formatBytes(job.bytes_done)} of ${formatBytes(job.bytes_total)})`
    : '';
  return `${verb(job)}: ${job.files_done} of ${plural(job.files_total, 'file')}${bytes}`;
}

/** Between 0 and 1, for the notification's progress bar. */
export function progressFraction(job: IJob): number | undefined {
  if (job.bytes_total) {
    return Math.min(1, job.bytes_done / job.bytes_total);
  }
  if (job.files_total) {
    return Math.min(1, job.files_done / job.files_total);
  }
  return undefined;
}

/** How a finished job went, in one sentence, and how serious it is. */
export function resultMessage(
  job: IJob,
  destination: string | null
): { type: 'success' | 'warning' | 'error'; message: string } {
  if (job.state === 'error') {
    const what = job.kind === 'restore' ? 'Restore from bucket' : 'Sync to bucket';
    return { type: 'error', message: `${what} failed: ${job.message || 'unknown error'}` };
  }
  const parts: string[] = [];
  if (job.kind === 'restore') {
    parts.push(`${plural(job.downloaded, 'file')} restored`);
  } else {
    parts.push(`${job.uploaded} uploaded`);
    if (job.deleted) {
      parts.push(`${job.deleted} deleted from the bucket`);
    }
  }
  if (job.skipped) {
    parts.push(`${job.skipped} already up to date`);
  }
  const where = destination
    ? job.kind === 'restore'
      ? ` from ${destination}`
      : ` to ${destination}`
    : '';
  const done = job.kind === 'restore' ? 'Restored' : 'Synced';
  let message = `${done}${where}: ${parts.join(', ')}.`;
  const problems: string[] = [];
  if (job.errors?.length) {
    const first = job.errors[0];
    problems.push(
      `${plural(job.errors.length, 'file')} failed (${first.path}: ${first.message})`
    );
  }
  if (job.conflicts?.length) {
    problems.push(
      `${plural(job.conflicts.length, 'file')} changed here kept as is (${job.conflicts[0]})`
    );
  }
  if (problems.length) {
    message = `${message} ${problems.join('; ')}.`;
    return { type: 'warning', message };
  }
  return { type: 'success', message };
}
