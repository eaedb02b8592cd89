/**
 * The typed-text and clipboard timeline of an RDP recording: for the replay
 * (web/src/rdp/rdp-replay.ts, shown beside the player; each entry seeks it
 * to that moment) and for search (recorder/search-extract.ts indexes the
 * same entries). One copy for both: the web build bundles this file, so it
 * uses only what browsers and Node share (atob, TextDecoder), no Node APIs.
 *
 * With `recording-include-keys` (the computer's `recordInput` policy) guacd
 * writes every key event into the recording as `key,<keysym>,<pressed 1|0>,
 * <timestamp ms>` (guac_recording_report_key → guac_protocol_send_key, the
 * same events guacd's own `guaclog` turns into text). Clipboard text sent to
 * the person is in the recording as a `clipboard` stream (`clipboard`,
 * `blob` base64 …, `end`). Positions are relative to the first `sync`, as
 * Guacamole.SessionRecording's positions are (its frame 0 ends there).
 *
 * Pure: instructions in, entries out; no DOM. Keysyms: X11 keysymdef.h
 * (Latin-1 0x20–0xff map to the same code point; 0x01000000 + code point
 * is Unicode).
 */

export interface TimelineEntry {
  /** Milliseconds from the start of the recording (a player position). */
  at: number;
  /** `text`: typed characters (with ⌫ ⇥ ⏎ for Backspace, Tab, Enter); `key`: a combination or a special key; `clipboard`: text copied to the person. */
  kind: 'text' | 'key' | 'clipboard';
  text: string;
}

const MODIFIERS: Record<number, 'Shift' | 'Ctrl' | 'Alt' | 'Super' | null> = {
  0xffe1: 'Shift', 0xffe2: 'Shift', 0xffe3: 'Ctrl', 0xffe4: 'Ctrl', 0xffe9: 'Alt', 0xffea: 'Alt',
  0xffe7: 'Super', 0xffe8: 'Super', 0xffeb: 'Super', 0xffec: 'Super', 0xfe03: 'Alt', // ISO_Level3_Shift (AltGr): types characters
  0xffe5: null, 0xffe6: null, // Caps_Lock, Shift_Lock
};

const IN_TEXT: Record<number, string> = { 0xff08: '⌫', 0xff09: '⇥', 0xff0d: '⏎', 0xff8d: '⏎' };

const NAMED: Record<number, string> = {
  0xff1b: 'Escape', 0xffff: 'Delete', 0xff50: 'Home', 0xff51: 'Left', 0xff52: 'Up', 0xff53: 'Right', 0xff54: 'Down',
  0xff08: 'Backspace', 0xff09: 'Tab', 0xff0d: 'Enter',
  0xff55: 'PageUp', 0xff56: 'PageDown', 0xff57: 'End', 0xff63: 'Insert', 0xff61: 'Print', 0xff13: 'Pause', 0xff67: 'Menu',
};

/** A keysym's character, or null when it is not a printable one. */
export function keysymChar(keysym: number): string | null {
  if ((keysym >= 0x20 && keysym <= 0x7e) || (keysym >= 0xa0 && keysym <= 0xff)) return String.fromCodePoint(keysym);
  if (keysym >= 0x01000100 && keysym <= 0x0110ffff) return String.fromCodePoint(keysym - 0x01000000);
  return null;
}

function keyName(keysym: number): string {
  const ch = keysymChar(keysym);
  if (ch !== null) return ch === ' ' ? 'Space' : ch.length === 1 ? ch.toUpperCase() : ch;
  if (keysym >= 0xffbe && keysym <= 0xffd5) return `F${keysym - 0xffbe + 1}`;
  return NAMED[keysym] ?? `0x${keysym.toString(16)}`;
}

function decodeBase64Utf8(b64: string): string {
  try {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder('utf-8').decode(bytes);
  } catch {
    return '';
  }
}

/** Typing pauses longer than this start a new text entry. */
export const TEXT_GAP_MS = 2000;

/** Incremental builder: `push` each instruction of the recording in order, read `entries` at any time. */
export class KeyTimeline {
  readonly entries: TimelineEntry[] = [];
  #start: number | null = null;
  #lastSync: number | null = null;
  #held = new Set<'Shift' | 'Ctrl' | 'Alt' | 'Super'>();
  /** The open text entry and the time of its last character. */
  #run: { entry: TimelineEntry; last: number } | null = null;
  /** Clipboard streams being read: stream index → base64 parts. */
  #clips = new Map<string, { at: number; parts: string[] }>();

  #rel(ts: number): number {
    return this.#start === null ? 0 : Math.max(0, ts - this.#start);
  }

  push(opcode: string, args: readonly string[]): void {
    switch (opcode) {
      case 'sync': {
        const ts = Number(args[0]);
        if (!Number.isFinite(ts)) return;
        this.#start ??= ts;
        this.#lastSync = ts;
        return;
      }
      case 'key':
        return this.#key(Number(args[0]), args[1] === '1', Number(args[2]));
      case 'clipboard': {
        const [index = '', mimetype = ''] = args;
        if (/^text\//.test(mimetype)) this.#clips.set(index, { at: this.#rel(this.#lastSync ?? this.#start ?? 0), parts: [] });
        return;
      }
      case 'blob': {
        this.#clips.get(args[0] ?? '')?.parts.push(args[1] ?? '');
        return;
      }
      case 'end': {
        const clip = this.#clips.get(args[0] ?? '');
        if (!clip) return;
        this.#clips.delete(args[0] ?? '');
        // Base64 parts are whole groups of 4 (Guacamole.StringWriter / guacd send them so); decode joined.
        const text = decodeBase64Utf8(clip.parts.join(''));
        if (text) {
          this.#run = null;
          this.entries.push({ at: clip.at, kind: 'clipboard', text });
        }
        return;
      }
      default:
        return;
    }
  }

  #key(keysym: number, pressed: boolean, ts: number): void {
    if (!Number.isInteger(keysym)) return;
    // A key without a timestamp (older writers) happens at the last frame.
    const at = this.#rel(Number.isFinite(ts) ? ts : (this.#lastSync ?? 0));
    if (keysym in MODIFIERS) {
      const m = MODIFIERS[keysym];
      if (m && m !== 'Shift' && keysym !== 0xfe03) {
        if (pressed) this.#held.add(m);
        else this.#held.delete(m);
      }
      return;
    }
    if (!pressed) return;
    const ch = keysymChar(keysym);
    const combo = [...this.#held].filter((m) => m !== 'Shift');
    if (combo.length === 0 && (ch !== null || keysym in IN_TEXT)) {
      const add = ch ?? (IN_TEXT[keysym] as string);
      if (this.#run && at - this.#run.last <= TEXT_GAP_MS) {
        this.#run.entry.text += add;
        this.#run.last = at;
      } else {
        const entry: TimelineEntry = { at, kind: 'text', text: add };
        this.entries.push(entry);
        this.#run = { entry, last: at };
      }
      // Enter ends a line: what follows is a new entry (a new command).
      if (add === '⏎') this.#run = null;
      return;
    }
    this.#run = null;
    const order = ['Ctrl', 'Alt', 'Super'];
    const mods = combo.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    this.entries.push({ at, kind: 'key', text: [...mods, keyName(keysym)].join('+') });
  }
}

/** The whole timeline of a list of instructions (golden tests, small recordings). */
export function keyTimeline(instructions: Iterable<readonly string[]>): TimelineEntry[] {
  const t = new KeyTimeline();
  for (const [opcode = '', ...args] of instructions) t.push(opcode, args);
  return t.entries;
}

/** Streaming parser for code-point-length instructions (the recording file). */
export class CodePointParser {
  #buf = '';
  push(text: string, emit: (opcode: string, args: string[]) => void): void {
    this.#buf += text;
    const buf = this.#buf;
    let pos = 0;
    outer: while (pos < buf.length) {
      const elements: string[] = [];
      let p = pos;
      for (;;) {
        const dot = buf.indexOf('.', p);
        if (dot === -1) break outer;
        const len = Number(buf.slice(p, dot));
        if (!Number.isInteger(len) || len < 0) throw new Error('malformed recording');
        let i = dot + 1;
        for (let n = 0; n < len; n++) {
          if (i >= buf.length) break outer;
          const c = buf.charCodeAt(i);
          i += c >= 0xd800 && c <= 0xdbff ? 2 : 1;
        }
        if (i >= buf.length) break outer;
        elements.push(buf.slice(dot + 1, i));
        if (buf[i] === ';') {
          const [opcode = '', ...args] = elements;
          emit(opcode, args);
          pos = i + 1;
          break;
        }
        if (buf[i] !== ',') throw new Error('malformed recording');
        p = i + 1;
      }
    }
    this.#buf = buf.slice(pos);
  }
}
