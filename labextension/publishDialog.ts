/**
 * The body of the Publish dialog: public (in the gallery) or unlisted (only through its link),
 * and, for an unlisted dashboard that already has a link, whether to replace that link.
 */
import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IDashboard, IDashboardVersion, Visibility } from './types';

export interface IPublishChoice {
  visibility: Visibility;
  /** Replace the unlisted link: the old one stops working. */
  newLink: boolean;
}

export class PublishOptions extends Widget implements Dialog.IBodyWidget<IPublishChoice> {
  constructor(name: string, existing: IDashboard | undefined) {
    super();
    this.addClass('jp-hybrid-PublishOptions');
    const intro = document.createElement('p');
    intro.textContent =
      `“${name}” will be published as a dashboard` +
      (existing ? `, replacing version ${existing.version}` : '') +
      '. Viewers see its outputs, not its code.';
    this.node.appendChild(intro);
    const current: Visibility = existing?.visibility ?? 'public';
    this._public = this._radio('public', 'Public: listed in the gallery, anyone can find it', current);
    this._unlisted = this._radio(
      'unlisted',
      'Unlisted: not in the gallery, only people with the link can open it',
      current
    );
    const renew = document.createElement('label');
    renew.className = 'jp-hybrid-PublishOptions-newLink';
    this._newLink = document.createElement('input');
    this._newLink.type = 'checkbox';
    this._newLink.name = 'hybrid-new-link';
    renew.append(this._newLink, ' Make a new link (the current link stops working)');
    // Only an unlisted dashboard that already has a link can have it replaced.
    const hasLink = existing?.visibility === 'unlisted';
    const update = () => {
      renew.style.display = hasLink && this._unlisted.checked ? '' : 'none';
    };
    this._public.addEventListener('change', update);
    this._unlisted.addEventListener('change', update);
    update();
    this.node.appendChild(renew);
  }

  getValue(): IPublishChoice {
    const visibility: Visibility = this._unlisted.checked ? 'unlisted' : 'public';
    return { visibility, newLink: visibility === 'unlisted' && this._newLink.checked };
  }

  private _radio(value: Visibility, text: string, current: Visibility): HTMLInputElement {
    const label = document.createElement('label');
    label.className = 'jp-hybrid-PublishOptions-choice';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'hybrid-visibility';
    input.value = value;
    input.checked = value === current;
    label.append(input, ` ${text}`);
    this.node.appendChild(label);
    return input;
  }

  private _public: HTMLInputElement;
  private _unlisted: HTMLInputElement;
  private _newLink: HTMLInputElement;
}

/** The body of the Versions dialog: the versions still on the host, one to return to. */
export class VersionChoice extends Widget implements Dialog.IBodyWidget<number | null> {
  constructor(versions: IDashboardVersion[]) {
    super();
    this.addClass('jp-hybrid-VersionChoice');
    const intro = document.createElement('p');
    intro.textContent =
      'The public host keeps the last few versions. Rolling back publishes the chosen ' +
      'version again as the newest one; nothing is deleted.';
    this.node.appendChild(intro);
    for (const v of versions) {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = 'hybrid-version';
      input.value = String(v.version);
      input.disabled = v.current;
      const when = new Date(v.published).toLocaleString();
      label.append(
        input,
        ` Version ${v.version}: ${v.title} (${when})${v.current ? ' (current)' : ''}`
      );
      this.node.appendChild(label);
      this._inputs.push(input);
    }
  }

  getValue(): number | null {
    const chosen = this._inputs.find(i => i.checked);
    return chosen ? Number(chosen.value) : null;
  }

  private _inputs: HTMLInputElement[] = [];
}
