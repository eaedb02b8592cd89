import { CodePointParser, KeyTimeline, type TimelineEntry } from './rdp-key-timeline.js';
import { parseStreamRecord } from './stream.format.js';

/**
 * What a sealed recording contributes to search (migration 18,
 * recorder/search-index.ts): its lines, each with the offset into the
 * recording where it happened. Pure: recording bytes in, lines out.
 *
 * - `output`: a line the session printed (ANSI sequences removed, carriage
 *   returns and backspaces applied).
 * - `command`: the command part of a printed line that looks like a shell
 *   prompt followed by a command (`alice@web01:~$ systemctl restart nginx`),
 *   so the command timeline works without recorded input.
 * - `input`: a line typed (asciicast `i` events, recorded only when the
 *   computer's `recordInput` policy says so). A line typed at an echo-off
 *   prompt (a password) is stored masked (empty, `masked: true`), never its text: see
 *   `TerminalLines`.
 * - `exec`: the command of an exec channel; `sftp`: one SFTP operation.
 * - `keys`, `key`, `clipboard`: RDP typed text, key combinations and special
 *   keys (`Ctrl+C`, `Alt+Tab`, `F5`), and clipboard text sent to the person
 *   (from guacd's recording; keys only with `recording-include-keys`).
 */
export type LineKind = 'output' | 'input' | 'command' | 'exec' | 'sftp' | 'keys' | 'key' | 'clipboard';

export interface IndexedLine {
  /**
   * Milliseconds from the start of the recording: when the line was complete
   * (its newline printed, Enter typed), so a player opened there shows it.
   */
  atMs: number;
  kind: LineKind;
  /** Empty for a masked line. */
  text: string;
  /** A line typed at an echo-off prompt: its text is not stored. */
  masked?: true;
}

export interface Extracted {
  lines: IndexedLine[];
  /** Typed lines stored masked (typed at an echo-off prompt). */
  masked: number;
}

/** Longer lines are cut (a screen of base64 is not a line anyone searches whole). */
export const MAX_LINE_CHARS = 2000;

/**
 * Prompts that turn echo off (a password is asked for): `Password:`,
 * `[sudo] password for alice:`, `Enter passphrase for key '...':`,
 * `Verification code:`, `PIN:`. A line typed after one is masked even when
 * something was echoed (some programs echo `*`).
 */
export const SECRET_PROMPT = /(pass(word|phrase|code)|\bpin\b|verification code|one-time code|otp|secret|token)[^\n]*[:>?]\s*$/i;

/**
 * Shell prompts followed by a command: `user@host:path$ cmd`, `[user@host dir]# cmd`,
 * `host% cmd`, `PS C:\> cmd`, or a bare `$ cmd` / `# cmd`.
 */
const PROMPT_COMMAND = /^(?:\([^)]{1,64}\)\s*)?(?:[\w.-]+@[\w.-]+(?::[^\s]*)?\s?[$#%>]|\[[^\]]{1,128}\][$#%>]|PS [^>]{1,256}>|[$#])\s+(\S.*)$/;

/** The command part of a printed line that starts with a shell prompt, or null. */
export function commandOfPromptLine(line: string): string | null {
  const m = PROMPT_COMMAND.exec(line);
  return m ? m[1]!.trim() : null;
}

// ESC sequences: CSI (with parameters), OSC (to BEL or ST), charset selections, single-character escapes.
const CSI = /^\x1b\[([0-?]*)[ -/]*([@-~])/;
const OSC = /^\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/;
const OTHER_ESC = /^\x1b(?:[()*+][0-9A-Za-z]|[@-Z\\-_=>78c])/;

/**
 * A screen line being built from output: printable characters overwrite at
 * the cursor, `\r` returns to column 0, `\b` and CSI `D`/`C` move, CSI `K`
 * erases to the end, CSI `P` deletes, `\n` ends the line. Enough for shells,
 * readline redraws and progress bars; full-screen programs give noisy lines.
 */
class ScreenLine {
  chars: string[] = [];
  col = 0;
  text(): string {
    return this.chars.join('').replace(/\s+$/, '');
  }
  put(ch: string): void {
    if (this.col < this.chars.length) this.chars[this.col] = ch;
    else {
      while (this.chars.length < this.col) this.chars.push(' ');
      this.chars.push(ch);
    }
    this.col++;
  }
  csi(params: string, final: string): void {
    const n = Math.max(1, Number(params.split(';')[0]) || 1);
    if (final === 'K') {
      if (params === '' || params === '0') this.chars.length = Math.min(this.chars.length, this.col);
      else if (params === '2') this.chars = [];
    } else if (final === 'D') this.col = Math.max(0, this.col - n);
    else if (final === 'C') this.col += n;
    else if (final === 'P') this.chars.splice(this.col, n);
    else if (final === 'G') this.col = n - 1;
  }
  reset(): void {
    this.chars = [];
    this.col = 0;
  }
}

/**
 * Lines of a terminal session from its output and (when recorded) input
 * events, in recording order.
 *
 * Echo-off detection: a typed line (up to Enter) is stored in clear only
 * when the terminal echoed it — output arrived while it was being typed, or
 * the printed line that Enter completed ends with what was typed — and the
 * prompt it was typed at does not ask for a secret (`SECRET_PROMPT`).
 * Otherwise it is stored masked: no text. A program that turns echo off (termios
 * ECHO cleared: passwd, sudo, ssh, su, read -s) prints nothing while one
 * types, so its secret never reaches the index.
 */
export class TerminalLines {
  readonly lines: IndexedLine[] = [];
  masked = 0;
  #screen = new ScreenLine();
  #pendingOut = '';
  #typed: { text: string; prompt: string; echoed: boolean } | null = null;
  #pendingIn = '';
  /** A typed line waiting for the output line that Enter completes (to check its echo). */
  #awaiting: { line: IndexedLine; typed: string } | null = null;

  output(atMs: number, data: string): void {
    let s = this.#pendingOut + data;
    this.#pendingOut = '';
    if (this.#typed && /[^\s\x00-\x1f]/.test(s.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, ''))) this.#typed.echoed = true;
    let i = 0;
    while (i < s.length) {
      const ch = s[i]!;
      if (ch === '\x1b') {
        const rest = s.slice(i);
        const m = CSI.exec(rest) ?? OSC.exec(rest) ?? OTHER_ESC.exec(rest);
        if (m) {
          if (m[0].startsWith('\x1b[')) this.#screen.csi(m[1] ?? '', m[2] ?? '');
          i += m[0].length;
          continue;
        }
        // an escape sequence cut between two events: keep it for the next one
        if (rest.length < 64 && !/[\x07\n]/.test(rest.slice(1))) {
          this.#pendingOut = rest;
          return;
        }
        i++;
        continue;
      }
      if (ch === '\n') this.#endScreenLine(atMs);
      else if (ch === '\r') this.#screen.col = 0;
      else if (ch === '\b') this.#screen.col = Math.max(0, this.#screen.col - 1);
      else if (ch === '\t') this.#screen.col = (Math.floor(this.#screen.col / 8) + 1) * 8;
      else if (ch >= ' ' && ch !== '\x7f') this.#screen.put(ch);
      i++;
    }
    s = '';
  }

  input(atMs: number, data: string): void {
    let s = this.#pendingIn + data;
    this.#pendingIn = '';
    let i = 0;
    while (i < s.length) {
      const ch = s[i]!;
      if (ch === '\x1b') {
        const m = CSI.exec(s.slice(i)) ?? /^\x1bO./.exec(s.slice(i)) ?? /^\x1b./.exec(s.slice(i));
        if (!m) {
          this.#pendingIn = s.slice(i);
          return;
        }
        i += m[0].length; // cursor keys, function keys: not text
        continue;
      }
      if (ch === '\r' || ch === '\n') this.#endTyped(atMs);
      else if (ch === '\x7f' || ch === '\b') {
        if (this.#typed) this.#typed.text = this.#typed.text.slice(0, -1);
      } else if (ch === '\x15' || ch === '\x03' || ch === '\x04') this.#typed = null; // ^U, ^C, ^D: the line is abandoned
      else if (ch >= ' ' || ch === '\t') {
        this.#typed ??= { text: '', prompt: this.#screen.text(), echoed: false };
        this.#typed.text += ch === '\t' ? ' ' : ch;
      }
      i++;
    }
    s = '';
  }

  /** End of the recording: whatever is still open. */
  finish(endMs: number): Extracted {
    this.#endScreenLine(endMs);
    this.#typed = null; // never completed with Enter: not a command
    this.#settleAwaiting(null);
    return { lines: this.lines, masked: this.masked };
  }

  #endScreenLine(atMs: number): void {
    const text = this.#screen.text().slice(0, MAX_LINE_CHARS);
    const at = atMs;
    this.#screen.reset();
    if (this.#awaiting) this.#settleAwaiting(text);
    if (!text.trim()) return;
    const cmd = commandOfPromptLine(text);
    this.lines.push({ atMs: at, kind: 'output', text });
    if (cmd) this.lines.push({ atMs: at, kind: 'command', text: cmd.slice(0, MAX_LINE_CHARS) });
  }

  #endTyped(atMs: number): void {
    const t = this.#typed;
    this.#typed = null;
    if (!t || !t.text.trim()) return;
    const line: IndexedLine = { atMs, kind: 'input', text: t.text.slice(0, MAX_LINE_CHARS) };
    this.lines.push(line);
    if (SECRET_PROMPT.test(t.prompt)) return this.#mask(line);
    if (t.echoed) return;
    // Typed (or pasted) with Enter in one go: decide when the line it completes is printed.
    this.#settleAwaiting(null);
    this.#awaiting = { line, typed: t.text };
  }

  #settleAwaiting(printed: string | null): void {
    const a = this.#awaiting;
    this.#awaiting = null;
    if (a && !(printed !== null && printed.trimEnd().endsWith(a.typed.trimEnd()))) this.#mask(a.line);
  }

  #mask(line: IndexedLine): void {
    line.text = '';
    line.masked = true;
    this.masked++;
  }
}

/** Lines of an asciicast v2 recording (header line, then `[seconds, code, data]` per line). */
export function extractAsciicast(text: string): Extracted {
  const t = new TerminalLines();
  let last = 0;
  const rows = text.split('\n');
  for (let n = 1; n < rows.length; n++) {
    const row = rows[n]!;
    if (!row.startsWith('[')) continue;
    let ev: unknown;
    try {
      ev = JSON.parse(row);
    } catch {
      continue; // an interrupted last line
    }
    if (!Array.isArray(ev) || typeof ev[0] !== 'number' || typeof ev[2] !== 'string') continue;
    const at = Math.max(0, Math.round(ev[0] * 1000));
    last = at;
    if (ev[1] === 'o') t.output(at, ev[2]);
    else if (ev[1] === 'i') t.input(at, ev[2]);
  }
  return t.finish(last);
}

// SFTP v3 request types (draft-ietf-secsh-filexfer-02 §3) and what each does to the file system.
const SFTP_OPS: Record<number, { op: string; paths: number }> = {
  3: { op: 'open', paths: 1 },
  9: { op: 'setstat', paths: 1 },
  11: { op: 'list', paths: 1 },
  13: { op: 'remove', paths: 1 },
  14: { op: 'mkdir', paths: 1 },
  15: { op: 'rmdir', paths: 1 },
  18: { op: 'rename', paths: 2 },
  20: { op: 'symlink', paths: 2 },
};
// SSH_FXF_* open flags (§6.3)
const FXF_WRITE = 0x02;
const FXF_APPEND = 0x04;
const FXF_CREAT = 0x08;

/** SFTP operations from the client's request packets (`uint32 length, byte type, uint32 id, string path …`). */
export class SftpOps {
  readonly lines: IndexedLine[] = [];
  #buf = Buffer.alloc(0);

  push(atMs: number, data: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, data]) : Buffer.from(data);
    while (this.#buf.length >= 5) {
      const len = this.#buf.readUInt32BE(0);
      if (len > 256 * 1024 + 64) {
        this.#buf = Buffer.alloc(0); // not SFTP framing (or lost sync): stop reading this stream
        return;
      }
      if (this.#buf.length < 4 + len) return;
      const pkt = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      this.#packet(atMs, pkt);
    }
  }

  #packet(atMs: number, p: Buffer): void {
    const spec = SFTP_OPS[p.readUInt8(0)];
    if (!spec || p.length < 9) return;
    let off = 5; // type + request id
    const paths: string[] = [];
    for (let k = 0; k < spec.paths; k++) {
      if (off + 4 > p.length) return;
      const n = p.readUInt32BE(off);
      if (off + 4 + n > p.length) return;
      paths.push(p.subarray(off + 4, off + 4 + n).toString('utf8'));
      off += 4 + n;
    }
    let op = spec.op;
    if (op === 'open' && off + 4 <= p.length) {
      const flags = p.readUInt32BE(off);
      op = flags & FXF_WRITE || flags & FXF_APPEND ? (flags & FXF_CREAT ? 'write' : 'modify') : 'read';
    }
    this.lines.push({ atMs, kind: 'sftp', text: `${op} ${paths.join(' → ')}`.slice(0, MAX_LINE_CHARS) });
  }
}

/**
 * Lines of a stream record (`.jsr`, recorder/stream.format.ts): the exec
 * command and what it printed, or the SFTP operations. An exec channel's
 * stdin is not indexed: it can carry anything piped in, secrets included
 * (`sudo -S`), and no echo tells us otherwise.
 */
export function extractStreamRecord(buf: Buffer): Extracted {
  const rec = parseStreamRecord(buf);
  if (rec.header.kind === 'sftp') {
    const ops = new SftpOps();
    for (const f of rec.frames) if (f.direction === 'in') ops.push(f.ms, f.data);
    return { lines: ops.lines, masked: 0 };
  }
  const t = new TerminalLines();
  const lines: IndexedLine[] = [];
  if (rec.header.command) lines.push({ atMs: 0, kind: 'exec', text: rec.header.command.slice(0, MAX_LINE_CHARS) });
  const decoder = new TextDecoder('utf-8');
  let last = 0;
  for (const f of rec.frames) {
    last = f.ms;
    if (f.direction === 'out' || f.direction === 'err') t.output(f.ms, decoder.decode(f.data, { stream: true }));
  }
  const out = t.finish(last);
  // Exec output is not a shell session: no prompt lines to turn into commands.
  return { lines: [...lines, ...out.lines.filter((l) => l.kind === 'output')], masked: 0 };
}

/** A typed run as it was meant: Backspace applied, Tab as a space, the closing Enter dropped (it ended the line). */
function typedText(run: string): string {
  const out: string[] = [];
  for (const ch of run) {
    if (ch === '⌫') out.pop();
    else if (ch === '⇥') out.push(' ');
    else if (ch !== '⏎') out.push(ch);
  }
  return out.join('');
}

function guacLine(e: TimelineEntry): IndexedLine | null {
  const text = (e.kind === 'text' ? typedText(e.text) : e.text).slice(0, MAX_LINE_CHARS);
  if (!text.trim()) return null;
  return { atMs: e.at, kind: e.kind === 'text' ? 'keys' : e.kind, text };
}

/** Text decoded per slice: a recording is read in pieces, never as one string of its whole size. */
const GUAC_SLICE = 1024 * 1024;

/**
 * Lines of a guacd session recording (`.guac`): the entries the RDP replay
 * lists beside the player (recorder/rdp-key-timeline.ts, the same code), so
 * a hit opens the player where the timeline entry is. Typed text is there
 * only when the computer's `recordInput` policy had guacd record keys
 * (`recording-include-keys`); without it a recording carries no key events
 * and nothing typed is indexed. Nothing is masked: a key event carries no
 * echo and no prompt to tell a password from a command, which is why
 * `recordInput` is off by default (gateway/api/computer-policy.ts); what is
 * indexed is exactly what the replay already shows to the same people.
 * A recording that ends inside an instruction (guacd stopped) or turns
 * malformed gives the lines read until then.
 */
export function extractGuacRecording(bytes: Buffer): Extracted {
  const timeline = new KeyTimeline();
  const parser = new CodePointParser();
  const decoder = new TextDecoder('utf-8');
  const emit = (op: string, args: string[]): void => timeline.push(op, args);
  try {
    for (let i = 0; i < bytes.length; i += GUAC_SLICE) parser.push(decoder.decode(bytes.subarray(i, i + GUAC_SLICE), { stream: true }), emit);
    parser.push(decoder.decode(), emit);
  } catch {
    // malformed from here on: keep what was read (guacd writes whole instructions; this is damage, reported by verify)
  }
  const lines = timeline.entries.map(guacLine).filter((l): l is IndexedLine => l !== null);
  return { lines, masked: 0 };
}
