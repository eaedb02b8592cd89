/**
 * What the proxies (SSH terminal, SSH exec/SFTP, RDP) need from the recorder.
 * Implemented in recorder/ (asciicast v2 for pty sessions, a compact binary
 * stream record for exec/SFTP, guacd's own files for RDP), with a
 * RecordingStore for where files live and a signed manifest for integrity.
 */
export interface RecordingMeta {
  sessionId: string;
  personLogin: string;
  computerName: string;
  account: string | null;
  protocol: 'ssh' | 'rdp';
  startedAt: Date;
  /**
   * What a reviewer must know beside the bytes (`recordings.metadata`): e.g.
   * `breakGlass` and `accessRequestId` of the window the session ran in, the
   * moderators' presence of a four-eyes session. Flags also go into the
   * asciicast header's `jitgate` field, so the file itself carries them.
   */
  metadata?: RecordingMetadata | undefined;
}

/** Recording metadata: JSON, kept in `recordings.metadata` (migration 21). */
export interface RecordingMetadata {
  breakGlass?: boolean;
  accessRequestId?: string;
  moderated?: boolean;
  moderation?: readonly unknown[];
  [key: string]: unknown;
}

export interface TerminalRecordingOptions {
  cols: number;
  rows: number;
  /** Record keystrokes (off by default: they can capture secrets; per computer policy). */
  recordInput: boolean;
  term?: string;
  /** Login shell, for the asciicast header's env.SHELL (omitted when unknown). */
  shell?: string;
  command?: string;
}

export interface RecordingSummary {
  recordingId: string;
  sizeBytes: number;
  sha256: string;
  manifestSeq: number;
  /** Bytes not recorded because a caller kept writing past the writer's hard cap (marked in the file). */
  droppedBytes?: number;
}

/** One live pty recording (asciicast v2). */
export interface TerminalRecording {
  readonly recordingId: string;
  /**
   * Append output. Returns false when the writer is above its high-water
   * mark: the caller pauses its source until `drained()` resolves. Memory
   * never grows without bound.
   */
  output(data: Uint8Array): boolean;
  input(data: Uint8Array): boolean;
  resize(cols: number, rows: number): void;
  drained(): Promise<void>;
  /** Flush, fsync, hash, sign into the manifest and index in the database. Never deadlocks with a pending write. */
  close(): Promise<RecordingSummary>;
}

/** A non-pty channel (exec, SFTP): direction-tagged binary record. */
export interface StreamRecording {
  readonly recordingId: string;
  write(direction: 'in' | 'out' | 'err', data: Uint8Array): boolean;
  drained(): Promise<void>;
  close(exitCode?: number | null): Promise<RecordingSummary>;
}

/** Where guacd should write an RDP recording, and how to index it afterwards. */
export interface RdpRecordingSlot {
  readonly recordingId: string;
  /** Directory and file name as guacd must see them (recording-path / recording-name). */
  readonly guacdPath: string;
  readonly guacdName: string;
  /** Index the file guacd wrote: hash, sign, store row. */
  close(): Promise<RecordingSummary | null>;
  /**
   * Close a slot guacd never accepted (its handshake failed: nothing can have
   * been recorded). Signed as never started, which `recordings verify`
   * accepts; a file found anyway is sealed as by `close`. Only for a failed
   * handshake: a missing file after guacd accepted stays a problem.
   */
  neverStarted(reason: string): Promise<RecordingSummary | null>;
}

export interface SessionRecorder {
  startTerminal(meta: RecordingMeta, opts: TerminalRecordingOptions): Promise<TerminalRecording>;
  startStream(meta: RecordingMeta, kind: 'exec' | 'sftp', command?: string): Promise<StreamRecording>;
  startRdp(meta: RecordingMeta): Promise<RdpRecordingSlot>;
}
