/**
 * JupyterLab extension of the hybrid research cloud: sync notebooks to the bucket and
 * publish them as Voila dashboards.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { IDefaultFileBrowser, IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { CommandIDs, registerCommands } from './commands';
import { HybridModel } from './model';
import { watchNotices } from './notices';
import { announceRestoreAtStart } from './restoreReport';
import { DEFAULT_SETTINGS, IHybridSettings, readSettings } from './settings';
import { SyncStatusItem } from './statusbar';

const PLUGIN_ID = 'jupyter-hybrid-cloud:plugin';

/** How often to ask the server again whether sync and publish are set up. */
const REFRESH_MS = 60 * 1000;

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Sync notebooks to a bucket and publish them as Voila dashboards.',
  autoStart: true,
  optional: [
    ICommandPalette,
    INotebookTracker,
    IFileBrowserFactory,
    IDefaultFileBrowser,
    ISettingRegistry,
    IStatusBar
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    notebooks: INotebookTracker | null,
    browserFactory: IFileBrowserFactory | null,
    defaultBrowser: IDefaultFileBrowser | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null
  ) => {
    const model = new HybridModel();
    let settings: IHybridSettings = { ...DEFAULT_SETTINGS };
    let loaded: ISettingRegistry.ISettings | null = null;

    registerCommands(
      {
        app,
        model,
        notebooks,
        browserFactory,
        defaultBrowser,
        settings: () => settings,
        setSetting: async (key, value) => {
          await loaded?.set(key, value);
        }
      },
      palette
    );

    if (statusBar) {
      const item = new SyncStatusItem(model, () => {
        if (app.commands.isEnabled(CommandIDs.sync)) {
          void app.commands.execute(CommandIDs.sync);
        }
      });
      statusBar.registerStatusItem(`${PLUGIN_ID}:sync-status`, {
        item,
        align: 'left',
        rank: 50
      });
    }

    const autoSync = new AutoSync(model);
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(loadedSettings => {
          loaded = loadedSettings;
          const apply = () => {
            settings = readSettings(loadedSettings);
            autoSync.every(settings.autoSyncMinutes);
          };
          loadedSettings.changed.connect(apply);
          apply();
        })
        .catch(reason => {
          console.error('jupyter-hybrid-cloud: could not load its settings', reason);
        });
    }

    announceRestoreAtStart(model);
    watchNotices(model.client, () => void model.refresh());
    void model.refresh();
    window.setInterval(() => void model.refresh(), REFRESH_MS);
  }
};

/**
 * Syncs quietly every few minutes (a setting). Only failures are announced, and a
 * repeated failure only once.
 */
class AutoSync {
  constructor(private readonly model: HybridModel) {}

  every(minutes: number): void {
    window.clearInterval(this._timer);
    this._timer = undefined;
    if (minutes > 0) {
      this._timer = window.setInterval(() => void this.run(), minutes * 60 * 1000);
    }
  }

  private async run(): Promise<void> {
    const model = this.model;
    if (model.sync.state !== 'ready' || model.activeJob) {
      return;
    }
    let message: string | null;
    try {
      const job = await model.runJob(() => model.client.startSync());
      message = job.state === 'error' ? job.message ?? 'unknown error' : null;
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    }
    if (message && !this._failing) {
      Notification.error(`Automatic sync to bucket failed: ${message}`, { autoClose: false });
    }
    this._failing = message !== null;
  }

  private _timer: number | undefined;
  private _failing = false;
}

export default plugin;
