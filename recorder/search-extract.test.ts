import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeEndFrame, encodeFrame, encodeStreamPreamble } from './stream.format.js';
import { commandOfPromptLine, extractAsciicast, extractGuacRecording, extractStreamRecord } from './search-extract.js';

/** An asciicast v2 file from events, as recorder/asciicast.writer.ts writes it. */
function cast(events: [number, 'o' | 'i', string][]): string {
  return [JSON.stringify({ version: 2, width: 80, height: 24 }), ...events.map((e) => JSON.stringify(e))].join('\n') + '\n';
}

/** Keystrokes one event each, with the terminal's echo after each when `echo`. */
function typeAt(t0: number, text: string, echo: boolean): [number, 'o' | 'i', string][] {
  const out: [number, 'o' | 'i', string][] = [];
  [...text].forEach((ch, k) => {
    out.push([t0 + k * 0.1, 'i', ch]);
    if (echo) out.push([t0 + k * 0.1 + 0.01, 'o', ch]);
  });
  return out;
}

describe('search extraction of a terminal recording', () => {
  it('indexes printed lines at the moment they were complete, and the command of a prompt line', () => {
    const ex = extractAsciicast(cast([
      [0.5, 'o', '\x1b[01;32malice@web01\x1b[00m:~$ '],
      [1.25, 'o', 'uptime\r\n'],
      [1.5, 'o', ' 10:00:01 up 3 days,  2 users\r\n'],
    ]));
    expect(ex.lines).toEqual([
      { atMs: 1250, kind: 'output', text: 'alice@web01:~$ uptime' },
      { atMs: 1250, kind: 'command', text: 'uptime' },
      { atMs: 1500, kind: 'output', text: ' 10:00:01 up 3 days,  2 users' },
    ]);
  });

  it('applies carriage returns, backspaces and erase-line like the terminal', () => {
    const ex = extractAsciicast(cast([[0, 'o', 'progress 10%\rprogress 100%\r\n'], [1, 'o', 'tyop\b\b\x1b[Kpo\r\n']]));
    expect(ex.lines.map((l) => l.text)).toEqual(['progress 100%', 'typo']);
  });

  it('keeps an escape sequence cut between two events', () => {
    const ex = extractAsciicast(cast([[0, 'o', 'red \x1b[3'], [0.1, 'o', '1mtext\x1b[0m\r\n']]));
    expect(ex.lines.map((l) => l.text)).toEqual(['red text']);
  });

  it('indexes typed lines that the terminal echoed, with line editing applied', () => {
    const ex = extractAsciicast(cast([
      [0, 'o', 'alice@web01:~$ '],
      ...typeAt(1, 'ls -lx', true),
      [2, 'i', '\x7f'], [2.01, 'o', '\b \b'],
      ...typeAt(2.1, 'a', true),
      [3, 'i', '\r'], [3.01, 'o', '\r\n'],
    ]));
    expect(ex.masked).toBe(0);
    expect(ex.lines.filter((l) => l.kind === 'input')).toEqual([{ atMs: 3000, kind: 'input', text: 'ls -la' }]);
  });

  it('masks a password typed at an echo-off prompt (sudo): nothing echoed, the prompt asks for it', () => {
    const ex = extractAsciicast(cast([
      [0, 'o', 'alice@web01:~$ '],
      ...typeAt(1, 'sudo id', true),
      [2, 'i', '\r'], [2.01, 'o', '\r\n[sudo] password for alice: '],
      ...typeAt(3, 'Hunter2-secret', false),
      [5, 'i', '\r'], [5.01, 'o', '\r\nuid=0(root) gid=0(root)\r\n'],
    ]));
    expect(ex.masked).toBe(1);
    expect(JSON.stringify(ex.lines)).not.toContain('Hunter2');
    expect(ex.lines.filter((l) => l.kind === 'input')).toEqual([
      { atMs: 2000, kind: 'input', text: 'sudo id' },
      { atMs: 5000, kind: 'input', text: '', masked: true },
    ]);
  });

  it('masks a line typed without echo even when the prompt is not recognised (read -s)', () => {
    const ex = extractAsciicast(cast([[0, 'o', 'Enter the vault words '], ...typeAt(1, 'correct horse', false), [3, 'i', '\r'], [3.01, 'o', '\r\nok\r\n']]));
    expect(ex.masked).toBe(1);
    expect(JSON.stringify(ex.lines)).not.toContain('horse');
  });

  it('masks a line typed at a password prompt even when the program echoes stars', () => {
    const ex = extractAsciicast(cast([[0, 'o', 'Password: '], [1, 'i', 'abc'], [1.01, 'o', '***'], [2, 'i', '\r'], [2.01, 'o', '\r\n']]));
    expect(ex.masked).toBe(1);
    expect(JSON.stringify(ex.lines)).not.toContain('abc');
  });

  it('keeps a pasted command (typed with Enter in one event) once the echoed line shows it', () => {
    const ex = extractAsciicast(cast([[0, 'o', '$ '], [1, 'i', 'cat /etc/hostname\r'], [1.01, 'o', 'cat /etc/hostname\r\nweb01\r\n']]));
    expect(ex.masked).toBe(0);
    expect(ex.lines.filter((l) => l.kind === 'input').map((l) => l.text)).toEqual(['cat /etc/hostname']);
  });
});

describe('search extraction of stream records', () => {
  const header = { version: 1 as const, recordingId: 'r', sessionId: 's', person: 'alice', computer: 'web01', account: null, startedAt: 0 };

  it('indexes the exec command and its output, never its stdin', () => {
    const buf = Buffer.concat([
      encodeStreamPreamble({ ...header, kind: 'exec', command: 'sudo -S systemctl restart nginx' }),
      encodeFrame('in', 10, Buffer.from('s3cret-from-stdin\n')),
      encodeFrame('err', 20, Buffer.from('[sudo] password for alice: ')),
      encodeFrame('out', 900, Buffer.from('restarted\n')),
      encodeEndFrame(1000, 0, 0),
    ]);
    const ex = extractStreamRecord(buf);
    expect(ex.lines).toEqual([
      { atMs: 0, kind: 'exec', text: 'sudo -S systemctl restart nginx' },
      { atMs: 900, kind: 'output', text: '[sudo] password for alice: restarted' },
    ]);
    expect(JSON.stringify(ex.lines)).not.toContain('s3cret');
  });

  it('indexes SFTP operations from request packets split across frames', () => {
    const str = (s: string) => {
      const b = Buffer.from(s, 'utf8');
      const l = Buffer.alloc(4);
      l.writeUInt32BE(b.length);
      return Buffer.concat([l, b]);
    };
    const pkt = (type: number, ...fields: Buffer[]) => {
      const body = Buffer.concat([Buffer.from([type]), Buffer.from([0, 0, 0, 7]), ...fields]);
      const l = Buffer.alloc(4);
      l.writeUInt32BE(body.length);
      return Buffer.concat([l, body]);
    };
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    const open = pkt(3, str('/etc/nginx/nginx.conf'), u32(0x02 | 0x08 | 0x10), u32(0));
    const stream = Buffer.concat([pkt(13, str('/tmp/old.log')), open, pkt(18, str('/srv/a'), str('/srv/b'))]);
    const buf = Buffer.concat([
      encodeStreamPreamble({ ...header, kind: 'sftp', command: null }),
      encodeFrame('in', 5, stream.subarray(0, 7)),
      encodeFrame('in', 6, stream.subarray(7, 40)),
      encodeFrame('in', 7, stream.subarray(40)),
      encodeEndFrame(10, 0, 0),
    ]);
    expect(extractStreamRecord(buf).lines.map((l) => `${l.atMs} ${l.text}`)).toEqual(['6 remove /tmp/old.log', '7 write /etc/nginx/nginx.conf', '7 rename /srv/a → /srv/b']);
  });
});

describe('prompt lines', () => {
  it.each([
    ['alice@web01:~$ systemctl status', 'systemctl status'],
    ['[root@db01 ~]# tail -f /var/log/messages', 'tail -f /var/log/messages'],
    ['(venv) bob@host:/srv$ python x.py', 'python x.py'],
    ['$ make', 'make'],
    ['total 24', null],
    ['drwxr-xr-x 2 root root 4096 Dec  5 07:00 etc', null],
  ])('%s → %s', (line, cmd) => expect(commandOfPromptLine(line)).toBe(cmd));
});

describe('search extraction of an RDP recording (guacd format)', () => {
  // The golden fragment of rdp-key-timeline.test.ts: the lines are its timeline's entries, as the replay lists them.
  const fragment = readFileSync(new URL('./testdata/rdp-keys.guac', import.meta.url));

  it('indexes typed text with Backspace applied, key combinations and clipboard text at the replay timeline\'s moments', () => {
    expect(extractGuacRecording(fragment)).toEqual({
      masked: 0,
      lines: [
        { atMs: 500, kind: 'keys', text: 'dir:C\\' },
        { atMs: 1440, kind: 'key', text: 'Ctrl+C' },
        { atMs: 4420, kind: 'keys', text: 'whoami 😀' },
        { atMs: 5720, kind: 'clipboard', text: 'P@ss wörd' },
        { atMs: 5740, kind: 'keys', text: '@' },
        { atMs: 9720, kind: 'key', text: 'Escape' },
        { atMs: 9820, kind: 'key', text: 'F5' },
        { atMs: 9930, kind: 'key', text: 'Alt+Tab' },
      ],
    });
  });

  it('gives the same lines when the file is cut inside an instruction (guacd stopped), up to the cut', () => {
    const text = fragment.toString('utf8');
    const cut = text.indexOf('9.clipboard') + 5;
    expect(extractGuacRecording(Buffer.from(text.slice(0, cut))).lines.map((l) => l.text)).toEqual(['dir:C\\', 'Ctrl+C', 'whoami 😀']);
  });

  it('keeps what it read before a malformed instruction', () => {
    const text = fragment.toString('utf8');
    const at = text.indexOf('9.clipboard');
    expect(extractGuacRecording(Buffer.from(`${text.slice(0, at)}x.bad;${text.slice(at)}`)).lines.map((l) => l.text)).toEqual(['dir:C\\', 'Ctrl+C', 'whoami 😀']);
  });

  it('indexes nothing typed from a recording without key events (recordInput off)', () => {
    const noKeys = fragment.toString('utf8').replace(/3\.key,[^;]*;/g, '');
    expect(extractGuacRecording(Buffer.from(noKeys)).lines).toEqual([{ atMs: 5720, kind: 'clipboard', text: 'P@ss wörd' }]);
  });
});
