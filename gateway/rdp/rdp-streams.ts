import type { Instruction } from './guac-protocol.js';
import type { RdpPolicy } from './rdp-params.js';

/**
 * The relay's own enforcement of the clipboard and file-transfer policy, on
 * the Guacamole streams that pass through it (protocol reference,
 * "Streams and objects"): a guacd that ignores `disable-copy`,
 * `disable-upload`, `clipboard-buffer-size`… still cannot move data the
 * policy forbids, nor more of it than the limit.
 *
 * Streams are numbered by whoever opens them, so there are two index spaces:
 * - opened by the browser (`clipboard` = paste, `file`/`put` = upload):
 *   its `blob`/`end` come from the browser, `ack` from guacd;
 * - opened by guacd (`clipboard` = copy, `file`/`body` = download): its
 *   `blob`/`end` come from guacd, `ack` from the browser.
 * Sizes are the decoded bytes of the base64 `blob` payloads.
 *
 * A stream in a forbidden direction is dropped whole (its opener answered
 * with `ack … 0x0303 CLIENT_FORBIDDEN`, so it stops). A clipboard over the
 * limit is cut at the limit (at a UTF-8 boundary for text) and ended; a file
 * over the limit is stopped: the sender gets `ack … 0x030D CLIENT_OVERRUN`,
 * the receiver `end`, nothing more of it is relayed.
 */

/** Guacamole status codes (protocol reference, "Status codes"). */
export const GUAC_FORBIDDEN = '771'; // 0x0303 CLIENT_FORBIDDEN
export const GUAC_OVERRUN = '781'; // 0x030D CLIENT_OVERRUN
const GUAC_SUCCESS = '0';

/** guacd's mimetype for a directory listing sent as a `body` (not a download). */
const STREAM_INDEX_MIMETYPE = 'application/vnd.glyptodon.guacamole.stream-index+json';

/** One file transfer that ended (audited by the tunnel as rdp.file.upload / rdp.file.download). */
export interface TransferEvent {
  direction: 'upload' | 'download';
  name: string;
  mimetype: string;
  /** Bytes relayed. */
  bytes: number;
  outcome: 'success' | 'denied' | 'failure';
  /** Why it did not succeed, in words. */
  reason?: string;
}

export type StreamPolicy = Pick<RdpPolicy, 'copy' | 'paste' | 'clipboardMaxBytes' | 'drive' | 'upload' | 'download' | 'fileMaxBytes'>;

interface Tracked {
  kind: 'clipboard' | 'file' | 'listing';
  name: string;
  mimetype: string;
  bytes: number;
  max: number;
  /** Dropped (forbidden) or stopped (over the limit): nothing more of it is relayed. */
  cut: boolean;
}

/** What to do with one instruction: relay these (possibly none, possibly changed) and answer the sender with these. */
export interface Verdict {
  forward: Instruction[];
  reply: Instruction[];
}

/** Instructions that open a stream, and the position of the stream index among their arguments. */
const OPENS: Record<string, number> = { img: 0, audio: 0, video: 0, file: 0, clipboard: 0, pipe: 0, argv: 0, body: 1, put: 1 };

/** Cut `bytes` to at most `max`, backing off to a UTF-8 character boundary for text. */
function cutTo(data: Buffer, max: number, text: boolean): Buffer {
  let n = Math.min(max, data.length);
  // A continuation byte (10xxxxxx) at the cut means a character would be split.
  if (text) while (n > 0 && n < data.length && ((data[n] as number) & 0xc0) === 0x80) n--;
  return data.subarray(0, n);
}

export class StreamGuard {
  readonly #policy: StreamPolicy;
  readonly #onTransfer: (e: TransferEvent) => void;
  /** Streams opened by the browser, by index. */
  readonly #browser = new Map<string, Tracked>();
  /** Streams opened by guacd, by index. */
  readonly #guacd = new Map<string, Tracked>();

  constructor(policy: StreamPolicy, onTransfer: (e: TransferEvent) => void) {
    this.#policy = policy;
    this.#onTransfer = onTransfer;
  }

  /** An instruction from the browser, on its way to guacd. */
  fromBrowser(ins: Instruction): Verdict {
    const [opcode, ...args] = ins;
    const p = this.#policy;
    if (opcode in OPENS) {
      const idx = args[OPENS[opcode] as number] ?? '';
      this.#browser.delete(idx);
      if (opcode === 'clipboard') {
        if (!p.paste) return this.#refuseOpen(this.#browser, idx, 'clipboard', args[1] ?? '', '', 'the clipboard may not go to the remote desktop');
        this.#browser.set(idx, { kind: 'clipboard', name: '', mimetype: args[1] ?? '', bytes: 0, max: p.clipboardMaxBytes, cut: false });
      } else if (opcode === 'file' || opcode === 'put') {
        const [mimetype, name] = opcode === 'file' ? [args[1] ?? '', args[2] ?? ''] : [args[2] ?? '', args[3] ?? ''];
        if (!p.drive || !p.upload) {
          this.#onTransfer({ direction: 'upload', name, mimetype, bytes: 0, outcome: 'denied', reason: 'uploads are not allowed' });
          return this.#refuseOpen(this.#browser, idx, 'file', mimetype, name, 'uploads to this computer are not allowed');
        }
        this.#browser.set(idx, { kind: 'file', name, mimetype, bytes: 0, max: p.fileMaxBytes, cut: false });
      }
      return { forward: [ins], reply: [] };
    }
    if (opcode === 'blob') return this.#blob(this.#browser, 'upload', ins, args[0] ?? '', args[1] ?? '');
    if (opcode === 'end') return this.#end(this.#browser, 'upload', ins, args[0] ?? '');
    if (opcode === 'ack') return this.#ack(this.#guacd, ins, args[0] ?? '');
    return { forward: [ins], reply: [] };
  }

  /** An instruction from guacd, on its way to the browser. */
  fromGuacd(ins: Instruction): Verdict {
    const [opcode, ...args] = ins;
    const p = this.#policy;
    if (opcode in OPENS) {
      const idx = args[OPENS[opcode] as number] ?? '';
      this.#guacd.delete(idx);
      if (opcode === 'clipboard') {
        if (!p.copy) return this.#refuseOpen(this.#guacd, idx, 'clipboard', args[1] ?? '', '', 'the clipboard may not leave the remote desktop', false);
        this.#guacd.set(idx, { kind: 'clipboard', name: '', mimetype: args[1] ?? '', bytes: 0, max: p.clipboardMaxBytes, cut: false });
      } else if (opcode === 'file' || opcode === 'body') {
        const [mimetype, name] = opcode === 'file' ? [args[1] ?? '', args[2] ?? ''] : [args[2] ?? '', args[3] ?? ''];
        if (opcode === 'body' && mimetype === STREAM_INDEX_MIMETYPE) {
          // A directory listing of the redirected drive: names only, no file content.
          this.#guacd.set(idx, { kind: 'listing', name, mimetype, bytes: 0, max: p.fileMaxBytes, cut: false });
          return { forward: [ins], reply: [] };
        }
        if (!p.drive || !p.download) {
          this.#onTransfer({ direction: 'download', name, mimetype, bytes: 0, outcome: 'denied', reason: 'downloads are not allowed' });
          return this.#refuseOpen(this.#guacd, idx, 'file', mimetype, name, 'downloads from this computer are not allowed');
        }
        this.#guacd.set(idx, { kind: 'file', name, mimetype, bytes: 0, max: p.fileMaxBytes, cut: false });
      }
      return { forward: [ins], reply: [] };
    }
    if (opcode === 'blob') return this.#blob(this.#guacd, 'download', ins, args[0] ?? '', args[1] ?? '');
    if (opcode === 'end') return this.#end(this.#guacd, 'download', ins, args[0] ?? '');
    if (opcode === 'ack') return this.#ack(this.#browser, ins, args[0] ?? '', args[2]);
    return { forward: [ins], reply: [] };
  }

  /** The session ended: transfers still running are audited as not completed. */
  close(): void {
    for (const [streams, direction] of [[this.#browser, 'upload'], [this.#guacd, 'download']] as const) {
      for (const t of streams.values()) {
        if (t.kind === 'file' && !t.cut) this.#onTransfer({ direction, name: t.name, mimetype: t.mimetype, bytes: t.bytes, outcome: 'failure', reason: 'the session ended during the transfer' });
      }
      streams.clear();
    }
  }

  #refuseOpen(streams: Map<string, Tracked>, idx: string, kind: Tracked['kind'], mimetype: string, name: string, words: string, ack = true): Verdict {
    streams.set(idx, { kind, name, mimetype, bytes: 0, max: 0, cut: true });
    // guacd streams its clipboard without waiting for acks: nothing to answer it.
    return { forward: [], reply: ack ? [['ack', idx, words, GUAC_FORBIDDEN]] : [] };
  }

  #blob(streams: Map<string, Tracked>, direction: TransferEvent['direction'], ins: Instruction, idx: string, data: string): Verdict {
    const t = streams.get(idx);
    if (!t) return { forward: [ins], reply: [] };
    if (t.cut) return { forward: [], reply: [] };
    const n = Buffer.byteLength(data, 'base64');
    if (t.bytes + n <= t.max) {
      t.bytes += n;
      return { forward: [ins], reply: [] };
    }
    t.cut = true;
    if (t.kind === 'clipboard') {
      // Cut at the limit: the receiver gets the first max bytes and the end of the stream.
      const part = cutTo(Buffer.from(data, 'base64'), t.max - t.bytes, t.mimetype.startsWith('text/'));
      t.bytes += part.length;
      const forward: Instruction[] = part.length ? [['blob', idx, part.toString('base64')], ['end', idx]] : [['end', idx]];
      // guacd streams its clipboard without waiting for acks: only the browser is told.
      return { forward, reply: direction === 'upload' ? [['ack', idx, 'clipboard content over the limit was cut', GUAC_OVERRUN]] : [] };
    }
    // A file (or listing) over the limit is stopped: the receiver's stream ends, the sender is told to stop.
    if (t.kind === 'file') {
      this.#onTransfer({ direction, name: t.name, mimetype: t.mimetype, bytes: t.bytes, outcome: 'denied', reason: `larger than the limit of ${t.max} bytes` });
    }
    return { forward: [['end', idx]], reply: [['ack', idx, `file larger than the limit of ${t.max} bytes`, GUAC_OVERRUN]] };
  }

  #end(streams: Map<string, Tracked>, direction: TransferEvent['direction'], ins: Instruction, idx: string): Verdict {
    const t = streams.get(idx);
    if (!t) return { forward: [ins], reply: [] };
    // Already ended towards the receiver when it was cut. Kept as cut (until the index is opened again): acks
    // the other side still sends for blobs relayed before the cut must not reach a sender that has its answer.
    if (t.cut) return { forward: [], reply: [] };
    streams.delete(idx);
    if (t.kind === 'file') this.#onTransfer({ direction, name: t.name, mimetype: t.mimetype, bytes: t.bytes, outcome: 'success' });
    return { forward: [ins], reply: [] };
  }

  /** An `ack` for a stream the other side opened; `status` set when the ack comes from guacd about an upload. */
  #ack(streams: Map<string, Tracked>, ins: Instruction, idx: string, status?: string): Verdict {
    const t = streams.get(idx);
    if (!t) return { forward: [ins], reply: [] };
    // We answered the sender already when we cut it.
    if (t.cut) return { forward: [], reply: [] };
    if (status !== undefined && status !== GUAC_SUCCESS && t.kind === 'file') {
      // guacd refused the upload (disable-upload, disk full…): it is over.
      streams.delete(idx);
      this.#onTransfer({ direction: 'upload', name: t.name, mimetype: t.mimetype, bytes: t.bytes, outcome: 'failure', reason: `guacd: ${ins[2] ?? ''} (${status})` });
    }
    return { forward: [ins], reply: [] };
  }
}
