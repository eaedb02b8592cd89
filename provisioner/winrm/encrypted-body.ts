/**
 * MIME framing of WinRM message encryption (MS-WSMV §2.2.9.1.1, as Windows
 * and pywinrm write it): a `multipart/encrypted` body with boundary
 * `Encrypted Boundary`; the first part names the original content type and
 * length, the second carries a 4-byte little-endian signature length, the
 * signature, and the sealed payload (same length as the plaintext: RC4).
 */

export const SPNEGO_PROTOCOL = 'application/HTTP-SPNEGO-session-encrypted';
export const ENCRYPTED_CONTENT_TYPE = `multipart/encrypted;protocol="${SPNEGO_PROTOCOL}";boundary="Encrypted Boundary"`;
const BOUNDARY = '--Encrypted Boundary';

export function frameEncrypted(sealed: Buffer, signature: Buffer, originalLength: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(signature.length);
  return Buffer.concat([
    Buffer.from(
      `${BOUNDARY}\r\n` +
        `\tContent-Type: ${SPNEGO_PROTOCOL}\r\n` +
        `\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=${originalLength}\r\n` +
        `${BOUNDARY}\r\n` +
        `\tContent-Type: application/octet-stream\r\n`,
      'latin1',
    ),
    len,
    signature,
    sealed,
    Buffer.from(`${BOUNDARY}--\r\n`, 'latin1'),
  ]);
}

export function isEncryptedContentType(contentType: string | undefined): boolean {
  return (
    contentType !== undefined &&
    /^multipart\/encrypted/i.test(contentType) &&
    contentType.toLowerCase().includes(`protocol="${SPNEGO_PROTOCOL.toLowerCase()}"`)
  );
}

export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

/** Parse one encrypted part; the plaintext length bounds the sealed bytes (binary, may contain anything). */
export function parseEncrypted(body: Buffer): { signature: Buffer; sealed: Buffer; originalLength: number } {
  const text = body.toString('latin1');
  const first = `${BOUNDARY}\r\n`;
  if (!text.startsWith(first)) throw new FramingError('encrypted body does not start with the boundary');
  const lenMatch = /OriginalContent:[^\r\n]*Length=(\d+)\r\n/i.exec(text.slice(0, 512));
  if (!lenMatch?.[1]) throw new FramingError('encrypted body without OriginalContent length');
  const originalLength = Number(lenMatch[1]);
  const octetHeader = 'Content-Type: application/octet-stream\r\n';
  const second = text.indexOf(`${BOUNDARY}\r\n`, first.length);
  if (second < 0) throw new FramingError('encrypted body without its second part');
  const oh = text.indexOf(octetHeader, second);
  if (oh < 0) throw new FramingError('encrypted body without the octet-stream part');
  let off = oh + octetHeader.length;
  if (off + 4 > body.length) throw new FramingError('truncated encrypted body');
  const sigLen = body.readUInt32LE(off);
  off += 4;
  if (sigLen !== 16 || off + sigLen + originalLength > body.length) {
    throw new FramingError('encrypted body lengths do not add up');
  }
  const signature = Buffer.from(body.subarray(off, off + sigLen));
  off += sigLen;
  const sealed = Buffer.from(body.subarray(off, off + originalLength));
  const trailer = body.subarray(off + originalLength).toString('latin1');
  if (!trailer.startsWith(`${BOUNDARY}--`)) throw new FramingError('encrypted body without the closing boundary');
  return { signature, sealed, originalLength };
}
