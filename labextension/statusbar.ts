/**
 * The status bar item: the state of the sync (checking, off, syncing, synced, failed) and
 * when it last ran. Clicking it syncs.
 */
import { Time } from '@jupyterlab/coreutils';
import { Widget } from '@lumino/widgets';

import { syncIcon } from './icons';
import { jobTime } from './messages';
import { HybridModel } from './model';

export type SyncDisplayState = 'checking' | 'off' | 'syncing' | 'ok' | 'error' | 'idle' | 'unsynced';

export interface ISyncDisplay {
  state: SyncDisplayState;
  text: string;
  title: string;
}

/** "20 GB" / "512 MB" (decimal units, as disks are sold). */
function sizeText(bytes: number): string {
  return bytes >= 1e9 ? `${Math.round(bytes / 1e9)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

/**
 * The sync display, saying where the work lives: "home: persistent volume, 20 GB, 43% used"
 * or "ephemeral: synced 2 minutes ago" (and how many files only this server has).
 */
export function describeSync(model: HybridModel, now: Date = new Date()): ISyncDisplay {
  const display = describeSyncState(model, now);
  const home = model.home;
  if (!home || home.kind === 'unknown' || display.state === 'checking') {
    return display;
  }
  const used = home.size_bytes ? Math.round((100 * home.used_bytes) / home.size_bytes) : 0;
  const unsynced =
    home.unsynced > 0
      ? ` ${home.unsynced} file${home.unsynced === 1 ? '' : 's'} changed since the last sync.`
      : '';
  if (home.kind === 'persistent' && (display.state === 'ok' || display.state === 'idle')) {
    return {
      ...display,
      text: `home: persistent volume, ${sizeText(home.size_bytes)}, ${used}% used`,
      title: `Your home is a volume kept when this server stops. ${display.title}${unsynced}`
    };
  }
  const lower = display.text.charAt(0).toLowerCase() + display.text.slice(1);
  if (home.kind === 'ephemeral') {
    return {
      ...display,
      state: home.unsynced > 0 && display.state !== 'syncing' ? 'unsynced' : display.state,
      text: `ephemeral: ${lower}`,
      title:
        `This server's home does not outlive it: only what is in the bucket survives a stop.${unsynced} ` +
        display.title
    };
  }
  return { ...display, text: `shared home: ${lower}`, title: `Your home is on the cluster's shared filesystem. ${display.title}` };
}

/** What the item shows for the sync alone. */
function describeSyncState(model: HybridModel, now: Date): ISyncDisplay {
  const availability = model.sync;
  if (availability.state === 'checking') {
    return { state: 'checking', text: 'Sync…', title: 'Checking whether sync to bucket is set up…' };
  }
  if (availability.state === 'unavailable') {
    return { state: 'off', text: 'Sync off', title: availability.reason };
  }
  const where = model.destination ?? 'the bucket';
  const active = model.activeJob;
  if (active) {
    const progress = active.files_total ? ` ${active.files_done}/${active.files_total}` : '…';
    const verb = active.kind === 'restore' ? 'Restoring' : 'Syncing';
    return { state: 'syncing', text: `${verb}${progress}`, title: `${verb} with ${where}` };
  }
  const last = model.lastJob;
  if (model.lastError && (!last || last.state !== 'error')) {
    return {
      state: 'error',
      text: 'Sync failed',
      title: `The last sync failed: ${model.lastError}. Click to try again.`
    };
  }
  if (!last) {
    return { state: 'idle', text: 'Not synced', title: `Click to sync with ${where}` };
  }
  const when = jobTime(last.finished) ?? jobTime(last.started);
  const ago = when ? Time.formatHuman(when) : '';
  const exact = when ? ` at ${Time.format(when)}` : '';
  if (last.state === 'error') {
    return {
      state: 'error',
      text: 'Sync failed',
      title: `The last sync failed${exact}: ${last.message ?? 'unknown error'}. Click to try again.`
    };
  }
  return {
    state: 'ok',
    text: ago ? `Synced ${ago}` : 'Synced',
    title: `Last synced with ${where}${exact}. Click to sync now.`
  };
}

export class SyncStatusItem extends Widget {
  constructor(
    private readonly model: HybridModel,
    private readonly onClick: () => void
  ) {
    super();
    this.addClass('jp-HybridSyncStatus');
    this.addClass('jp-StatusBar-GroupItem');
    const icon = document.createElement('span');
    icon.className = 'jp-HybridSyncStatus-icon';
    syncIcon.element({ container: icon, elementPosition: 'center', height: '16px', width: '16px' });
    this._text.className = 'jp-StatusBar-TextItem jp-HybridSyncStatus-text';
    this.node.append(icon, this._text);
    this.node.addEventListener('click', this._handleClick);
    model.changed.connect(this.update, this);
    // Keep "Synced 3 minutes ago" true as time passes.
    this._ticker = window.setInterval(() => this.update(), 30000);
    this.update();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this._ticker);
    this.node.removeEventListener('click', this._handleClick);
    this.model.changed.disconnect(this.update, this);
    super.dispose();
  }

  protected onUpdateRequest(): void {
    const display = describeSync(this.model);
    this._text.textContent = display.text;
    this.node.title = display.title;
    this.node.dataset.state = display.state;
  }

  private _handleClick = (): void => this.onClick();
  private _text = document.createElement('span');
  private _ticker: number;
}
