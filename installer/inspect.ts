import {
  dependencyOrder,
  payloadBytes,
  payloadFiles,
  readTrustedRoot,
  type BundleMetadata,
  type Change,
  type SignatureStatus,
} from '../manifest-schema/index.js';
import { openBundleMetadata } from '../bundle/open.js';

export interface InspectComponent {
  name: string;
  version: string;
  owner?: string;
  requires: Record<string, string>;
  platform?: string;
  /** included | default | url | unchanged */
  payload: string;
  payloadBytes: number;
  payloadFiles: number;
  /** What the bundle declares of its update. */
  estimatedSeconds?: number;
  restart?: string[];
  reboot?: boolean;
}

export interface InspectResult {
  file: string;
  format: string;
  size: number;
  product: string;
  kind: BundleMetadata['kind'];
  release: string;
  createdAt: string;
  /** When its publisher set one (`ferry build --expires`): after it, appliances refuse to install it. */
  expires?: string;
  /** Whether `expires` has passed, now: inspect still shows the bundle, install refuses it. */
  expired: boolean;
  notes: string;
  platform: BundleMetadata['platform'];
  target: Record<string, string>;
  supportedFrom: string[];
  changes: Change[];
  components: InspectComponent[];
  removed: string[];
  /** Bytes of payload the bundle carries. */
  payloadBytes: number;
  /** The oldest Ferry that installs it, and the installer it carries. */
  minInstaller?: string;
  installer?: { version: string; platform: string; size: number };
  signature: { valid: boolean | null; keyids: string[]; threshold?: number; problems?: string[] };
  /** Bytes of the bundle file read to produce this (metadata only). */
  bytesRead: number;
}

/** Metadata only: never reads payload. With a trust file, says whether the signature meets it. */
export async function inspectBundle(
  file: string,
  trustFile?: string,
  now = new Date(),
): Promise<InspectResult> {
  const trust =
    trustFile === undefined ? undefined : { root: await readTrustedRoot(trustFile), now };
  const { reader, envelope, metadata, signature } = await openBundleMetadata(file, trust);
  try {
    const components = dependencyOrder(metadata).map((name): InspectComponent => {
      const component = metadata.components[name] as BundleMetadata['components'][string];
      const payload = component.payload;
      const files = (payloadFiles(payload) ?? []).filter((f) => f.type === 'file').length;
      return {
        name,
        version: component.version,
        ...(component.owner !== undefined ? { owner: component.owner } : {}),
        requires: component.requires,
        ...(component.platform !== undefined ? { platform: component.platform } : {}),
        payload: payload.type,
        payloadBytes: payloadBytes(payload),
        payloadFiles: files,
        ...(component.estimatedSeconds !== undefined
          ? { estimatedSeconds: component.estimatedSeconds }
          : {}),
        ...(component.restart !== undefined ? { restart: component.restart } : {}),
        ...(component.reboot !== undefined ? { reboot: component.reboot } : {}),
      };
    });
    return {
      file,
      format: reader.format,
      size: reader.size,
      product: metadata.product,
      kind: metadata.kind,
      release: metadata.release.version,
      createdAt: metadata.release.createdAt,
      ...(metadata.expires !== undefined ? { expires: metadata.expires } : {}),
      expired: metadata.expires !== undefined && now.getTime() >= Date.parse(metadata.expires),
      notes: metadata.release.notes,
      platform: metadata.platform,
      target: metadata.target,
      supportedFrom: metadata.supportedFrom.map((release) => release.version),
      changes: metadata.changes,
      components,
      removed: Object.keys(metadata.removed).sort(),
      payloadBytes: components
        .filter((c) => c.payload === 'included')
        .reduce((sum, c) => sum + c.payloadBytes, 0),
      ...(metadata.minInstaller !== undefined ? { minInstaller: metadata.minInstaller } : {}),
      ...(metadata.installer
        ? {
            installer: {
              version: metadata.installer.version,
              platform: metadata.installer.platform,
              size: metadata.installer.size,
            },
          }
        : {}),
      signature: signatureSummary(
        signature,
        envelope.signatures.map((s) => s.keyid),
      ),
      bytesRead: reader.bytesRead(),
    };
  } finally {
    await reader.close();
  }
}

function signatureSummary(
  status: SignatureStatus | undefined,
  signers: string[],
): InspectResult['signature'] {
  if (!status) return { valid: null, keyids: [...signers].sort() };
  return {
    valid: status.valid,
    keyids: status.keyids,
    threshold: status.threshold,
    problems: status.problems,
  };
}
