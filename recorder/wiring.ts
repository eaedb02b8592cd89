import { join } from 'node:path';
import type { AuditLog } from '../core/audit.js';
import { loadAuditKey } from '../core/audit-key.js';
import type { Database, Queryable } from '../core/db/database.js';
import type { Logger } from '../core/logging.js';
import type { Config } from '../config/schema.js';
import type { EvidenceExportDeps } from './evidence-export.js';
import { loadEvidenceSigner } from './evidence-key.js';
import { FsRecordingStore } from './fs-recording.store.js';
import { createRecorder, type Recorder } from './session-recorder.js';
import { loadSigningKey } from './signing-key.js';

/** `recordings.dir`, default `<dataDir>/recordings`. */
export function recordingsDir(cfg: Config): string {
  return cfg.recordings.dir ?? join(cfg.dataDir, 'recordings');
}

/** The manifest key from `recordings.signingKey`, else `<dataDir>/recording-signing.key` (created 0600). */
export function signingKeyFor(cfg: Config): Buffer {
  return loadSigningKey({ configured: cfg.recordings.signingKey, dataDir: cfg.dataDir });
}

/** The recorder from the configuration: SessionRecorder for the proxies, RecordingFiles for the API, verify for the CLI. */
export function recorderFromConfig(cfg: Config, deps: { db: Database; audit: AuditLog; log: Logger; onSealed?: (recordingId: string) => Promise<void> }): Recorder {
  return createRecorder({ ...deps, dir: recordingsDir(cfg), signingKey: signingKeyFor(cfg), guacdDir: cfg.guacd.recordingDir });
}

/** The evidence exporter's keys and store from the configuration (docs/evidence.md). */
export function evidenceDepsFromConfig(cfg: Config, db: Queryable): EvidenceExportDeps {
  return {
    db,
    store: new FsRecordingStore(recordingsDir(cfg)),
    recordingKey: signingKeyFor(cfg),
    auditKey: loadAuditKey({ configured: cfg.audit.signingKey, dataDir: cfg.dataDir }),
    signer: loadEvidenceSigner({ configured: cfg.recordings.evidenceKey, dataDir: cfg.dataDir }),
  };
}
