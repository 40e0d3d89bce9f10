import type { PayloadEntry, PayloadRef } from './schemas.js';

/**
 * What a component's payload reference means, in one place: each
 * `payload.type` branch the builder, the planner and the installer need.
 */

/** What the plan decides for a component. */
export type Action =
  'install' | 'upgrade' | 'keep' | 'downgrade' | 'reinstall' | 'remove' | 'skip' | 'error';

/** Installs a version of the component (its payload is staged and activated). */
export function isUpdating(action: Action): boolean {
  return (
    action === 'install' || action === 'upgrade' || action === 'downgrade' || action === 'reinstall'
  );
}

/** Changes the appliance: an update or a removal. */
export function isActing(action: Action): boolean {
  return isUpdating(action) || action === 'remove';
}

/** The payload is inside the bundle (under `payload/<component>/`). */
export function isCarried(payload: PayloadRef): boolean {
  return payload.type === 'included';
}

/**
 * The files a version installs, as signed: the listed files of an included or
 * default-location payload, the one saved file of a url payload; null when
 * the bundle does not describe them (`unchanged`).
 */
export function payloadFiles(payload: PayloadRef): PayloadEntry[] | null {
  switch (payload.type) {
    case 'included':
    case 'default':
      return payload.files;
    case 'url':
      return [
        {
          path: payload.saveAs,
          type: 'file',
          mode: 0o644,
          size: payload.size,
          sha256: payload.sha256,
        },
      ];
    case 'unchanged':
      return null;
  }
}

/** Bytes a version's payload installs (0 when the bundle does not describe it). */
export function payloadBytes(payload: PayloadRef): number {
  return payload.type === 'unchanged' ? 0 : payload.size;
}
