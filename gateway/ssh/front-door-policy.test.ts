import { describe, expect, it } from 'vitest';
import type { Computer } from '../../core/domain.js';
import { channelRefusal, fileTransferTool } from './front-door-policy.js';

describe('fileTransferTool', () => {
  it('recognises the server side of scp, sftp-server, internal-sftp and rsync', () => {
    // What OpenSSH's scp -O, sftp -s and rsync send as the remote command.
    expect(fileTransferTool('scp -t /tmp')).toBe('scp');
    expect(fileTransferTool('scp -v -r -p -f -- /etc/shadow')).toBe('scp');
    expect(fileTransferTool('scp -pt .')).toBe('scp');
    expect(fileTransferTool('/usr/bin/scp -d -t /tmp/x')).toBe('scp');
    expect(fileTransferTool('/usr/lib/openssh/sftp-server')).toBe('sftp-server');
    expect(fileTransferTool('/usr/libexec/sftp-server -e -l DEBUG3')).toBe('sftp-server');
    expect(fileTransferTool('internal-sftp')).toBe('internal-sftp');
    expect(fileTransferTool('rsync --server -vlogDtpre.iLsfxCIvu . /tmp/x')).toBe('rsync');
    expect(fileTransferTool('rsync --server --sender -vlogDtpre.iLsfxCIvu . /etc')).toBe('rsync');
    // Wrapped in a shell, quoted, after another command.
    expect(fileTransferTool(`sh -c 'scp -f /etc/passwd'`)).toBe('scp');
    expect(fileTransferTool('cd /tmp && "scp" -t .')).toBe('scp');
    expect(fileTransferTool('exec s\\cp -t .')).toBe('scp');
    expect(fileTransferTool('env LC_ALL=C /usr/lib/openssh/sftp-server')).toBe('sftp-server');
  });

  it('leaves ordinary commands alone, including scp as a client', () => {
    for (const cmd of ['id', 'ls -ltf /tmp', 'tar cf - /etc', 'cat /etc/hostname', 'scp file other:/tmp', 'scp -o ConnectTimeout=5 -P 2222 a b:', 'rsync -a src dst', 'systemctl status sftp-server.service']) {
      expect(fileTransferTool(cmd), cmd).toBeNull();
    }
  });
});

describe('channelRefusal', () => {
  const pc = (policy: Record<string, unknown>): Computer => ({ name: 'web01', policy }) as unknown as Computer;
  it('refuses file transfer and forwarding unless the policy allows them', () => {
    expect(channelRefusal(pc({}), { kind: 'sftp' })).toMatchObject({ what: 'file-transfer', message: 'SFTP is not allowed on web01' });
    expect(channelRefusal(pc({}), { kind: 'exec', command: 'scp -t .' })).toMatchObject({ what: 'file-transfer', tool: 'scp', message: 'file transfer (scp) is not allowed on web01' });
    expect(channelRefusal(pc({}), { kind: 'forward', dest: '10.0.0.1:22' })).toMatchObject({ what: 'port-forwarding', message: 'port forwarding is not allowed on web01' });
    expect(channelRefusal(pc({}), { kind: 'exec', command: 'id' })).toBeNull();
    expect(channelRefusal(pc({}), { kind: 'shell' })).toBeNull();
    expect(channelRefusal(pc({ sftp: true }), { kind: 'exec', command: 'scp -t .' })).toBeNull();
    expect(channelRefusal(pc({ sftp: true }), { kind: 'sftp' })).toBeNull();
    expect(channelRefusal(pc({ portForwarding: true }), { kind: 'forward', dest: 'x:1' })).toBeNull();
    // Only a real `true` allows: a string "false" or "true" from a hand-edited inventory does not.
    expect(channelRefusal(pc({ sftp: 'true' }), { kind: 'sftp' })).not.toBeNull();
  });
});
