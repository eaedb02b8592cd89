/**
 * Golden files for the WS-Man envelopes jitgate sends (fixed message ids),
 * plus the response parsers on Windows-shaped responses.
 * Regenerate with UPDATE_GOLDEN=1 after an intended change, and review the diff.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { frameEncrypted, parseEncrypted } from '../../provisioner/winrm/encrypted-body.js';
import {
  commandEnvelope,
  createShellEnvelope,
  decodeClixml,
  deleteShellEnvelope,
  parseEnvelope,
  parseFault,
  parseReceive,
  parseShellId,
  receiveEnvelope,
  sendEnvelope,
  signalEnvelope,
} from '../../provisioner/winrm/soap.js';
import { parseXml } from '../../provisioner/winrm/xml.js';
import { fault } from './wsman-test-server.js';

const base = { to: 'http://win01.example:5985/wsman', messageId: 'uuid:00000000-0000-4000-8000-000000000001', operationTimeoutSec: 20 };
const shellId = '11111111-2222-3333-4444-555555555555';
const commandId = '66666666-7777-8888-9999-AAAAAAAAAAAA';

const cases: Record<string, string> = {
  create: createShellEnvelope(base),
  command: commandEnvelope({ ...base, shellId, command: 'powershell.exe', args: ['-NoProfile', '-EncodedCommand', 'QQA='] }),
  send: sendEnvelope({ ...base, shellId, commandId, data: Buffer.from('eyJ2IjoxfQ==\r\n'), end: true }),
  receive: receiveEnvelope({ ...base, shellId, commandId }),
  signal: signalEnvelope({ ...base, shellId, commandId }),
  delete: deleteShellEnvelope({ ...base, shellId }),
};

describe('WS-Man envelopes match the golden files', () => {
  for (const [name, xml] of Object.entries(cases)) {
    it(name, () => {
      const file = fileURLToPath(new URL(`golden/${name}.xml`, import.meta.url));
      if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(file, xml);
      expect(existsSync(file), `missing golden file ${file}`).toBe(true);
      expect(xml).toBe(readFileSync(file, 'utf8'));
      parseEnvelope(xml); // well-formed
    });
  }

  it('escapes arguments', () => {
    expect(commandEnvelope({ ...base, shellId, command: 'x', args: ['<a&"b">'] })).toContain('<rsp:Arguments>&lt;a&amp;&quot;b&quot;&gt;</rsp:Arguments>');
  });
});

describe('response parsing', () => {
  it('reads ShellId, streams, CommandState and faults', () => {
    const created = parseEnvelope(
      `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Body><w:SelectorSet><w:Selector Name="ShellId">ABC</w:Selector></w:SelectorSet></s:Body></s:Envelope>`,
    );
    expect(parseShellId(created)).toBe('ABC');
    const recv = parseEnvelope(
      `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:ReceiveResponse>` +
        `<rsp:Stream Name="stdout" CommandId="C">aGVs</rsp:Stream><rsp:Stream Name="stdout" CommandId="C">bG8=</rsp:Stream><rsp:Stream Name="stderr" CommandId="C" End="true"></rsp:Stream>` +
        `<rsp:CommandState CommandId="C" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>3</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>`,
    );
    expect(parseReceive(recv)).toEqual({ stdout: Buffer.from('hello'), stderr: Buffer.alloc(0), done: true, exitCode: 3 });
    const f = parseFault(parseEnvelope(fault('uuid:x', 's:Receiver', 'w:TimedOut', '2150858793', 'timed out')));
    expect(f).toMatchObject({ code: 's:Receiver', subcode: 'w:TimedOut', wsmanCode: '2150858793', wsmanMessage: 'timed out' });
  });

  it('decodes CLIXML error records and leaves plain text alone', () => {
    const clixml =
      '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T></TN></Obj>' +
      '<S S="Error">New-LocalUser : User jit1 already exists._x000D__x000A_</S><S S="Error">At line:1 char:1_x000D__x000A_</S></Objs>';
    expect(decodeClixml(clixml)).toBe('New-LocalUser : User jit1 already exists.\r\nAt line:1 char:1');
    expect(decodeClixml('plain error')).toBe('plain error');
  });

  it('refuses DTDs in responses', () => {
    expect(() => parseXml('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')).toThrow(/DTD/);
  });

  it('frames and parses encrypted bodies as pywinrm does, binary-safe', () => {
    const sealed = Buffer.from('--Encrypted Boundary--\r\n\u0000\u00ff', 'latin1');
    const sig = Buffer.alloc(16, 1);
    const framed = frameEncrypted(sealed, sig, sealed.length);
    expect(framed.toString('latin1')).toMatch(
      /^--Encrypted Boundary\r\n\tContent-Type: application\/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application\/soap\+xml;charset=UTF-8;Length=26\r\n--Encrypted Boundary\r\n\tContent-Type: application\/octet-stream\r\n/,
    );
    // 4-byte little-endian signature length right after the octet-stream header.
    const at = framed.indexOf('octet-stream\r\n') + 'octet-stream\r\n'.length;
    expect(framed.readUInt32LE(at)).toBe(16);
    expect(parseEncrypted(framed)).toEqual({ signature: sig, sealed, originalLength: sealed.length });
  });
});
