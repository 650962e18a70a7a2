/**
 * The commands behind the toolbar buttons, menus and palette entries. Buttons and menus
 * are declared in schema/plugin.json; this file says what the commands do, when they are
 * enabled and what their tooltips say.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { PageConfig } from '@jupyterlab/coreutils';
import { Dialog, ICommandPalette, Notification, showDialog } from '@jupyterlab/apputils';
import { IDefaultFileBrowser, IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookTracker } from '@jupyterlab/notebook';
import { deleteIcon, launchIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { publishIcon, restoreIcon, syncIcon } from './icons';
import { IPublishChoice, PublishOptions, VersionChoice } from './publishDialog';
import { progressMessage } from './messages';
import { Availability, HybridModel } from './model';
import {
  notifyFailure,
  openInNewTab,
  publishWithNotification,
  runJobWithNotification
} from './notifications';
import { IHybridSettings } from './settings';
import { IDashboard } from './types';

export namespace CommandIDs {
  export const sync = 'hybrid:sync';
  export const restore = 'hybrid:restore';
  export const publish = 'hybrid:publish';
  export const unpublish = 'hybrid:unpublish';
  export const openDashboard = 'hybrid:open-dashboard';
  export const versions = 'hybrid:dashboard-versions';
  export const stopServer = 'hybrid:stop-server';
}

export const PALETTE_CATEGORY = 'Cloud';

export interface ICommandContext {
  app: JupyterFrontEnd;
  model: HybridModel;
  notebooks: INotebookTracker | null;
  browserFactory: IFileBrowserFactory | null;
  defaultBrowser: IDefaultFileBrowser | null;
  settings: () => IHybridSettings;
  /** Remember a setting, e.g. "do not ask again". */
  setSetting: (key: keyof IHybridSettings, value: boolean | number) => Promise<void>;
}

/**
 * Arguments the commands understand:
 * - `path` / `paths`: what to act on, explicitly;
 * - `source: "filebrowser"`: the file browser's selection (context menu entries);
 * - `toolbar: true`: a toolbar button (whose short label comes from the schema).
 */
type Args = ReadonlyPartialJSONObject;

function isNotebook(path: string): boolean {
  return path.toLowerCase().endsWith('.ipynb');
}

function baseName(path: string): string {
  return path.split('/').pop() ?? path;
}

function tooltip(availability: Availability, feature: string, ready: string): string {
  switch (availability.state) {
    case 'ready':
      return ready;
    case 'checking':
      return `Checking whether ${feature} is set up on this server…`;
    default:
      return availability.reason;
  }
}

export function registerCommands(ctx: ICommandContext, palette: ICommandPalette | null): void {
  const { app, model } = ctx;
  const { commands } = app;

  const selectedPaths = (): string[] => {
    const browser = ctx.browserFactory?.tracker.currentWidget ?? ctx.defaultBrowser;
    return browser ? Array.from(browser.selectedItems(), item => item.path) : [];
  };

  const currentNotebookPath = (): string | null => {
    const tracker = ctx.notebooks;
    if (!tracker) {
      return null;
    }
    const shellWidget = app.shell.currentWidget;
    const panel =
      shellWidget && tracker.has(shellWidget)
        ? tracker.find(w => w === shellWidget)
        : tracker.currentWidget;
    return panel ? panel.context.path : null;
  };

  /** The notebook a publish-related command acts on, or null when there is none. */
  const notebookTarget = (args: Args): string | null => {
    if (typeof args.path === 'string') {
      return args.path;
    }
    if (args.source === 'filebrowser') {
      return selectedPaths().find(isNotebook) ?? null;
    }
    return currentNotebookPath();
  };

  const saveIfDirty = async (path: string): Promise<void> => {
    const panel = ctx.notebooks?.find(w => w.context.path === path);
    if (panel && panel.context.model.dirty) {
      await panel.context.save();
    }
  };

  const saveAll = async (): Promise<void> => {
    if (commands.hasCommand('docmanager:save-all')) {
      await commands.execute('docmanager:save-all');
    }
  };

  const notifyAlreadyRunning = (): boolean => {
    const job = model.activeJob;
    if (job) {
      Notification.info(`${progressMessage(job)}. It will be reported here when it ends.`, {
        autoClose: 4000
      });
      return true;
    }
    return false;
  };

  commands.addCommand(CommandIDs.sync, {
    label: args =>
      args.source === 'filebrowser' ? 'Sync Selected to Bucket' : 'Sync to Bucket',
    caption: () =>
      tooltip(
        model.sync,
        'sync to bucket',
        `Upload new and changed files to ${model.destination ?? 'the bucket'} (nothing is deleted there)`
      ),
    icon: args => (args.toolbar || args.source ? syncIcon : undefined),
    isEnabled: () => model.sync.state === 'ready',
    execute: async args => {
      if (notifyAlreadyRunning()) {
        return;
      }
      const paths = Array.isArray(args.paths)
        ? (args.paths as string[])
        : args.source === 'filebrowser'
          ? selectedPaths()
          : [];
      // What is on screen is what lands in the bucket.
      await saveAll();
      return runJobWithNotification(
        model,
        'sync',
        () => model.client.startSync(paths.length ? { paths } : {}),
        () => void commands.execute(CommandIDs.sync, args)
      );
    }
  });

  commands.addCommand(CommandIDs.restore, {
    label: args =>
      args.source === 'filebrowser' ? 'Restore Selected from Bucket' : 'Restore from Bucket',
    caption: () =>
      tooltip(
        model.sync,
        'sync to bucket',
        `Download files from ${model.destination ?? 'the bucket'} that are missing here (local changes are never overwritten)`
      ),
    icon: args => (args.source ? restoreIcon : undefined),
    isEnabled: () => model.sync.state === 'ready',
    execute: async args => {
      if (notifyAlreadyRunning()) {
        return;
      }
      const paths = args.source === 'filebrowser' ? selectedPaths() : [];
      const job = await runJobWithNotification(
        model,
        'restore',
        () => model.client.startRestore(paths.length ? { paths } : {}),
        () => void commands.execute(CommandIDs.restore, args)
      );
      if (job && job.downloaded) {
        await (ctx.browserFactory?.tracker.currentWidget ?? ctx.defaultBrowser)?.model.refresh();
      }
      return job;
    }
  });

  commands.addCommand(CommandIDs.publish, {
    label: 'Publish to Voila',
    caption: () =>
      tooltip(
        model.publishing,
        'publishing to Voila',
        'Publish this notebook as a public Voila dashboard: its outputs, not its code'
      ),
    icon: args => (args.toolbar || args.source ? publishIcon : undefined),
    isEnabled: args => model.publishing.state === 'ready' && notebookTarget(args) !== null,
    execute: async args => {
      const path = notebookTarget(args);
      if (!path || !isNotebook(path)) {
        Notification.warning('Open or select a notebook (.ipynb) to publish it.', {
          autoClose: 5000
        });
        return;
      }
      const settings = ctx.settings();
      const existing = await model.dashboardFor(path);
      // Without the dialog, a republish keeps the dashboard's visibility and link.
      let choice: IPublishChoice = { visibility: existing?.visibility ?? 'public', newLink: false };
      if (args.visibility === 'public' || args.visibility === 'unlisted') {
        choice = { visibility: args.visibility, newLink: args.newLink === true };
      } else if (settings.confirmBeforePublish) {
        const result = await showDialog({
          title: 'Publish to Voila',
          body: new PublishOptions(baseName(path), existing),
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })],
          checkbox: { label: 'Do not ask me again', checked: false }
        });
        if (!result.button.accept || !result.value) {
          return;
        }
        choice = result.value;
        if (result.isChecked) {
          await ctx.setSetting('confirmBeforePublish', false);
        }
      }
      // Publish what the person sees, not the last save.
      await saveIfDirty(path);
      return publishWithNotification(
        model,
        path,
        settings.stripHiddenCells,
        () => void commands.execute(CommandIDs.publish, { ...args, path }),
        choice
      );
    }
  });

  /** The dashboard of the target notebook, or a warning saying it has none. */
  const dashboardOrWarn = async (args: Args): Promise<IDashboard | undefined> => {
    const path = notebookTarget(args);
    if (!path) {
      Notification.warning('Open or select a published notebook first.', { autoClose: 5000 });
      return undefined;
    }
    const dashboard = await model.dashboardFor(path);
    if (!dashboard) {
      Notification.warning(`“${baseName(path)}” is not published yet.`, {
        autoClose: 6000,
        actions: [
          {
            label: 'Publish',
            callback: () => void commands.execute(CommandIDs.publish, { path })
          }
        ]
      });
    }
    return dashboard;
  };

  commands.addCommand(CommandIDs.openDashboard, {
    label: 'Open Published Dashboard',
    caption: () =>
      tooltip(model.publishing, 'publishing to Voila', 'Open the public dashboard of this notebook'),
    icon: args => (args.source ? launchIcon : undefined),
    isEnabled: args => model.publishing.state === 'ready' && notebookTarget(args) !== null,
    execute: async args => {
      const dashboard = await dashboardOrWarn(args);
      if (dashboard) {
        openInNewTab(dashboard.url);
      }
    }
  });

  commands.addCommand(CommandIDs.versions, {
    label: 'Dashboard Versions…',
    caption: () =>
      tooltip(
        model.publishing,
        'publishing to Voila',
        'See the versions of this notebook’s dashboard and roll back to an earlier one'
      ),
    isEnabled: args => model.publishing.state === 'ready' && notebookTarget(args) !== null,
    execute: async args => {
      const dashboard = await dashboardOrWarn(args);
      if (!dashboard) {
        return;
      }
      const title = dashboard.title || dashboard.slug;
      let versions;
      try {
        versions = await model.versions(dashboard);
      } catch (error) {
        notifyFailure(`Could not list the versions of “${title}”`, error);
        return;
      }
      const result = await showDialog({
        title: `Versions of “${title}”`,
        body: new VersionChoice(versions),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Roll back' })]
      });
      if (!result.button.accept || result.value === null) {
        return;
      }
      try {
        const updated = await model.rollback(dashboard, result.value);
        Notification.success(
          `“${title}” shows version ${result.value} again (published as version ${updated.version}).`,
          {
            autoClose: false,
            actions: [
              {
                label: 'Open dashboard',
                callback: () => openInNewTab(updated.url),
                displayType: 'accent'
              }
            ]
          }
        );
      } catch (error) {
        notifyFailure(`Could not roll back “${title}”`, error);
      }
    }
  });

  commands.addCommand(CommandIDs.unpublish, {
    label: 'Unpublish Dashboard',
    caption: () =>
      tooltip(
        model.publishing,
        'publishing to Voila',
        'Remove the public dashboard of this notebook (the notebook itself stays)'
      ),
    icon: args => (args.source ? deleteIcon : undefined),
    isEnabled: args => model.publishing.state === 'ready' && notebookTarget(args) !== null,
    execute: async args => {
      const dashboard = await dashboardOrWarn(args);
      if (!dashboard) {
        return;
      }
      const title = dashboard.title || dashboard.slug;
      const result = await showDialog({
        title: 'Unpublish dashboard',
        body: `“${title}” will no longer be public: its link will stop working. The notebook itself is not changed.`,
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Unpublish' })]
      });
      if (!result.button.accept) {
        return;
      }
      try {
        await model.unpublish(dashboard);
      } catch (error) {
        notifyFailure(`Could not unpublish “${title}”`, error);
        return;
      }
      Notification.success(`“${title}” is no longer published.`, { autoClose: 5000 });
    }
  });

  commands.addCommand(CommandIDs.stopServer, {
    label: 'Stop My Server…',
    caption: 'Stop this server through JupyterHub (warns first if files would be lost with it)',
    // Only where a hub started this server.
    isVisible: () => PageConfig.getOption('hubUser') !== '',
    execute: async () => {
      const home = await model.refreshHome();
      const unsynced = home?.unsynced ?? 0;
      let body: string;
      const buttons = [Dialog.cancelButton()];
      if (home?.kind === 'ephemeral' && unsynced > 0) {
        const examples = home.unsynced_examples.join(', ');
        body =
          `This server's home does not outlive it, and ${unsynced} file${unsynced === 1 ? ' has' : 's have'} ` +
          `changed since the last sync (${examples}${unsynced > home.unsynced_examples.length ? ', …' : ''}). ` +
          'Stopped without a sync, these changes are lost.';
        buttons.push(
          Dialog.warnButton({ label: 'Stop without syncing' }),
          Dialog.okButton({ label: 'Sync, then stop' })
        );
      } else {
        body =
          home?.kind === 'persistent'
            ? 'Your home volume is kept: everything is there when you start again.'
            : home?.kind === 'ephemeral'
              ? 'Everything here is in the bucket: nothing is lost.'
              : 'Running kernels and terminals end with the server.';
        buttons.push(Dialog.warnButton({ label: 'Stop' }));
      }
      const result = await showDialog({ title: 'Stop this server?', body, buttons });
      if (!result.button.accept) {
        return;
      }
      if (result.button.label === 'Sync, then stop') {
        await saveAll();
        const job = await runJobWithNotification(
          model,
          'sync',
          () => model.client.startSync({}),
          () => void commands.execute(CommandIDs.sync)
        );
        if (!job || job.state !== 'done') {
          Notification.warning('The server keeps running: the sync did not finish.', {
            autoClose: false
          });
          return;
        }
      }
      try {
        await model.client.stopServer();
      } catch (error) {
        notifyFailure('Could not stop this server', error);
        return;
      }
      Notification.info('Stopping this server…', { autoClose: false });
    }
  });

  // Buttons and menus re-read labels, tooltips and enabled state when told.
  model.changed.connect(() => {
    for (const id of Object.values(CommandIDs)) {
      commands.notifyCommandChanged(id);
    }
  });

  if (palette) {
    for (const command of [
      CommandIDs.sync,
      CommandIDs.restore,
      CommandIDs.publish,
      CommandIDs.openDashboard,
      CommandIDs.versions,
      CommandIDs.unpublish,
      CommandIDs.stopServer
    ]) {
      palette.addItem({ command, category: PALETTE_CATEGORY });
    }
  }
}
