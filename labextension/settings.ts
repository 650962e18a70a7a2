/**
 * The user's settings of the extension (schema/plugin.json), with their defaults until the
 * setting registry has answered.
 */
import { ISettingRegistry } from '@jupyterlab/settingregistry';

export interface IHybridSettings {
  /** Minutes between automatic syncs; 0 turns automatic sync off. */
  autoSyncMinutes: number;
  confirmBeforePublish: boolean;
  stripHiddenCells: boolean;
}

export const DEFAULT_SETTINGS: IHybridSettings = {
  autoSyncMinutes: 0,
  confirmBeforePublish: true,
  stripHiddenCells: true
};

export function readSettings(settings: ISettingRegistry.ISettings): IHybridSettings {
  const get = <T>(key: keyof IHybridSettings): T =>
    (settings.get(key).composite as T) ?? (DEFAULT_SETTINGS[key] as T);
  const minutes = Number(get<number>('autoSyncMinutes'));
  return {
    autoSyncMinutes: Number.isFinite(minutes) && minutes > 0 ? minutes : 0,
    confirmBeforePublish: get<boolean>('confirmBeforePublish') !== false,
    stripHiddenCells: get<boolean>('stripHiddenCells') !== false
  };
}
