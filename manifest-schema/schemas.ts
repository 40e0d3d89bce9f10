/**
 * The schemas as they run: plain JSON generated from `declarations.ts`, typed
 * as the declarations so validators still produce the declared types.
 */
import type * as Declared from './declarations.js';
import applianceConfig from './schemas/appliance-config.json' with { type: 'json' };
import applianceFacts from './schemas/appliance-facts.json' with { type: 'json' };
import applianceState from './schemas/appliance-state.json' with { type: 'json' };
import bundleMetadata from './schemas/bundle-metadata.json' with { type: 'json' };
import controlTable from './schemas/control-table.json' with { type: 'json' };
import envelope from './schemas/envelope.json' with { type: 'json' };
import partsIndex from './schemas/parts-index.json' with { type: 'json' };
import releaseRecord from './schemas/release-record.json' with { type: 'json' };
import rootDocument from './schemas/root-document.json' with { type: 'json' };
import releaseSpec from './schemas/release-spec.json' with { type: 'json' };
import trustRoot from './schemas/trust-root.json' with { type: 'json' };

export const ReleaseSpecSchema = releaseSpec as unknown as typeof Declared.ReleaseSpecSchema;
export const BundleMetadataSchema =
  bundleMetadata as unknown as typeof Declared.BundleMetadataSchema;
export const EnvelopeSchema = envelope as unknown as typeof Declared.EnvelopeSchema;
export const ReleaseRecordSchema = releaseRecord as unknown as typeof Declared.ReleaseRecordSchema;
export const TrustRootSchema = trustRoot as unknown as typeof Declared.TrustRootSchema;
export const RootDocumentSchema = rootDocument as unknown as typeof Declared.RootDocumentSchema;
export const ControlTableSchema = controlTable as unknown as typeof Declared.ControlTableSchema;
export const ApplianceConfigSchema =
  applianceConfig as unknown as typeof Declared.ApplianceConfigSchema;
export const ApplianceStateSchema =
  applianceState as unknown as typeof Declared.ApplianceStateSchema;
export const ApplianceFactsSchema =
  applianceFacts as unknown as typeof Declared.ApplianceFactsSchema;
export const PartsIndexSchema = partsIndex as unknown as typeof Declared.PartsIndexSchema;

export type {
  ApplianceConfig,
  ApplianceFactsExport,
  ApplianceState,
  ArtifactRef,
  BundleComponent,
  BundleKind,
  BundleMetadata,
  CarriedInstaller,
  Change,
  ControlTable,
  Envelope,
  KeptDigest,
  PartsIndex,
  PayloadEntry,
  PayloadRef,
  ReleaseRecord,
  ReleaseSpec,
  RootDocument,
  SpecComponent,
  TrustRoot,
} from './declarations.js';
