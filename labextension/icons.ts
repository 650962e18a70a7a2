/**
 * Icons drawn with strokes in the theme's icon colour (class jp-icon3), so they follow
 * light and dark themes like JupyterLab's own.
 */
import { LabIcon } from '@jupyterlab/ui-components';

function strokeIcon(name: string, body: string): LabIcon {
  return new LabIcon({
    name: `jupyter-hybrid-cloud:${name}`,
    svgstr:
      '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
      '<g fill="none" stroke-linecap="round" stroke-linejoin="round" stroke-width="1.8">' +
      `<g class="jp-icon3" stroke="#616161">${body}</g></g></svg>`
  });
}

const CLOUD = '<path d="M7 19h10.5a4 4 0 0 0 .6-7.95A6 6 0 0 0 6.6 10.1 4.5 4.5 0 0 0 7 19z"/>';

/** A cloud with an arrow going up: send to the bucket. */
export const syncIcon = strokeIcon(
  'sync',
  `${CLOUD}<path d="M12 17v-6M9.5 13.5 12 11l2.5 2.5"/>`
);

/** A cloud with an arrow coming down: bring back from the bucket. */
export const restoreIcon = strokeIcon(
  'restore',
  `${CLOUD}<path d="M12 11v6M9.5 14.5 12 17l2.5-2.5"/>`
);

/** A globe: make public. */
export const publishIcon = strokeIcon(
  'publish',
  '<circle cx="12" cy="12" r="9"/><ellipse cx="12" cy="12" rx="4" ry="9"/>' +
    '<path d="M3.6 9h16.8M3.6 15h16.8"/>'
);
