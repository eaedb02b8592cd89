import { StringDecoder } from 'node:string_decoder';
import { JitgateError } from '../../core/errors.js';
import { RdpErrors } from './errors.js';

/**
 * The Guacamole protocol's instruction format: `LENGTH.VALUE,LENGTH.VALUE,...;`
 * where the first element is the opcode.
 *
 * Two length conventions meet in the gateway:
 * - guacd counts LENGTH in Unicode code points (Guacamole protocol reference,
 *   "Instruction format"; libguac `guac_utf8_strlen`), on a UTF-8 byte stream;
 * - guacamole-common-js 1.5.0 counts in UTF-16 code units on both sides
 *   (`WebSocketTunnel.sendMessage` uses `String.length`, its `onmessage`
 *   parser uses `substring`), so an astral character (emoji) counts 2 there.
 * The tunnel therefore parses every instruction and re-encodes it for the
 * other side instead of copying bytes, which also means a malformed
 * instruction never reaches guacd.
 */

export type Instruction = readonly [opcode: string, ...args: string[]];

/** guacd rejects instructions longer than 8192 code points (libguac GUAC_INSTRUCTION_MAX_LENGTH); leave room. */
export const MAX_INSTRUCTION_CHARS = 64 * 1024;
/** libguac GUAC_INSTRUCTION_MAX_ELEMENTS. */
export const MAX_ELEMENTS = 128;

function codePoints(s: string): number {
  // Fast path: no surrogate → one unit per code point (base64 image data, opcodes).
  if (!/[\uD800-\uDFFF]/.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Encode for guacd: lengths in Unicode code points. */
export function encodeInstruction(opcode: string, ...args: readonly string[]): string {
  let out = `${codePoints(opcode)}.${opcode}`;
  for (const a of args) out += `,${codePoints(a)}.${a}`;
  return out + ';';
}

/** Encode for guacamole-common-js 1.5.0: lengths in UTF-16 code units. */
export function encodeInstructionUtf16(opcode: string, ...args: readonly string[]): string {
  let out = `${opcode.length}.${opcode}`;
  for (const a of args) out += `,${a.length}.${a}`;
  return out + ';';
}

function protocolError(reason: string): JitgateError {
  return new JitgateError(RdpErrors.JIT_ERR_RDP_PROTOCOL, { reason });
}

/**
 * Index in `s` (UTF-16 units) after `count` code points starting at `from`,
 * or -1 when `s` ends first. A high surrogate at the very end counts as
 * incomplete (its low half may be in the next chunk).
 */
function advanceCodePoints(s: string, from: number, count: number): number {
  // Fast path: check the candidate span for surrogates.
  const end = from + count;
  if (end <= s.length && !/[\uD800-\uDFFF]/.test(s.slice(from, end))) return end;
  let i = from;
  for (let n = 0; n < count; n++) {
    if (i >= s.length) return -1;
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      if (i + 1 >= s.length) return -1;
      i += 2;
    } else {
      i += 1;
    }
  }
  return i;
}

/**
 * Incremental parser over a text stream. `unit` says how element lengths
 * are counted: 'codepoint' (guacd) or 'utf16' (guacamole-common-js).
 * Instructions may be split anywhere; `push` returns the complete ones.
 */
export class InstructionParser {
  #buf = '';
  readonly #unit: 'codepoint' | 'utf16';
  readonly #maxChars: number;

  constructor(unit: 'codepoint' | 'utf16', maxChars = MAX_INSTRUCTION_CHARS) {
    this.#unit = unit;
    this.#maxChars = maxChars;
  }

  /** Text buffered but not yet a complete instruction. */
  get pending(): string {
    return this.#buf;
  }

  push(text: string): Instruction[] {
    this.#buf += text;
    const out: Instruction[] = [];
    let pos = 0;
    const buf = this.#buf;
    outer: while (pos < buf.length) {
      const elements: string[] = [];
      let p = pos;
      for (;;) {
        const dot = buf.indexOf('.', p);
        if (dot === -1) {
          if (buf.length - p > 10) throw protocolError('element length too long');
          if (!/^\d*$/.test(buf.slice(p))) throw protocolError('non-numeric element length');
          break outer;
        }
        const lenText = buf.slice(p, dot);
        if (!/^\d{1,10}$/.test(lenText)) throw protocolError('non-numeric element length');
        const len = Number(lenText);
        if (len > this.#maxChars) throw protocolError('instruction too long');
        const start = dot + 1;
        const end = this.#unit === 'utf16' ? (start + len <= buf.length ? start + len : -1) : advanceCodePoints(buf, start, len);
        if (end === -1 || end >= buf.length) {
          if (buf.length - pos > this.#maxChars + 64) throw protocolError('instruction too long');
          break outer;
        }
        elements.push(buf.slice(start, end));
        if (elements.length > MAX_ELEMENTS) throw protocolError('too many elements');
        const term = buf[end];
        if (term === ';') {
          out.push(elements as unknown as Instruction);
          pos = end + 1;
          break;
        }
        if (term !== ',') throw protocolError('bad element terminator');
        p = end + 1;
      }
    }
    this.#buf = buf.slice(pos);
    if (this.#buf.length > this.#maxChars + 64) throw protocolError('instruction too long');
    return out;
  }
}

/**
 * Parser for guacd's TCP byte stream: UTF-8 decoding keeps a character
 * split across chunks whole (guacamole-lite decodes each chunk on its own
 * and breaks there), then code-point lengths.
 */
export class ByteStreamParser {
  readonly #decoder = new StringDecoder('utf8');
  readonly #parser = new InstructionParser('codepoint');

  push(chunk: Buffer): Instruction[] {
    return this.#parser.push(this.#decoder.write(chunk));
  }

  /** Bytes/text not yet forming an instruction (for handing a socket over after the handshake). */
  get pending(): string {
    return this.#parser.pending;
  }
}
