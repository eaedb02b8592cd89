import type { Computer } from '../../core/domain.js';

/** What a front-door channel asks of the computer. */
export type ChannelRequest =
  | { kind: 'shell' }
  | { kind: 'exec'; command: string }
  | { kind: 'sftp' }
  | { kind: 'forward'; dest: string };

/** Why the computer's policy refuses a channel: audited (`what`, `tool`) and told to the person (`message`). */
export interface ChannelRefusal {
  what: 'file-transfer' | 'port-forwarding';
  /** The file-transfer program recognised in an exec command (`scp`, `sftp-server`, `rsync`, `internal-sftp`), or `sftp` for the subsystem. */
  tool: string | null;
  /** What is refused, for the person: `SFTP`, `file transfer (scp)`, `port forwarding`. */
  label: string;
  /** `<label> is not allowed on <computer>`. */
  message: string;
}

/** Shell words: a rough split on whitespace and shell operators, quotes and backslashes dropped. */
function words(command: string): string[] {
  return command
    .replace(/['"\\]/g, '')
    .split(/[\s;&|()`]+/)
    .filter(Boolean);
}

function basename(word: string): string {
  return word.slice(word.lastIndexOf('/') + 1);
}

/** scp(1) options taking an argument (`-o Opt=value`, `-P 22`, …). */
const SCP_ARG_OPTIONS = new Set('cDFiJloPSX');

/** scp's options up to its first operand include -t (sink) or -f (source): the remote, server side (scp.c). */
function scpServerMode(args: string[]): boolean {
  for (let j = 0; j < args.length; j++) {
    const opt = args[j]!;
    if (!opt.startsWith('-') || opt === '--' || opt.startsWith('--')) return false;
    for (let k = 1; k < opt.length; k++) {
      const c = opt[k]!;
      if (c === 't' || c === 'f') return true;
      if (SCP_ARG_OPTIONS.has(c)) {
        // The argument is the rest of this word, or the next word.
        if (k === opt.length - 1) j++;
        break;
      }
    }
  }
  return false;
}

/**
 * The file-transfer program an exec command starts on the computer in its
 * server role, if it is one of the standard ones:
 * - `scp -t` / `scp -f` (the legacy SCP protocol, `scp -O`; scp(1) runs them remotely, rcp's protocol),
 * - `sftp-server` at any path (`sftp -s /usr/lib/openssh/sftp-server`, or run directly),
 * - `internal-sftp`,
 * - `rsync --server` (rsync(1) over ssh starts it remotely).
 * Every word of the command is looked at, so wrappers such as `sh -c '…'`,
 * `env …` or `cd /tmp && scp -t .` are caught too. This recognises the
 * standard tools only: any program that can read a file (`cat`, `tar`,
 * `base64`) moves data as well, which no command filter can stop.
 */
export function fileTransferTool(command: string): string | null {
  const w = words(command);
  for (let i = 0; i < w.length; i++) {
    const name = basename(w[i]!);
    if (name === 'sftp-server' || name === 'internal-sftp') return name;
    if (name === 'scp') {
      if (scpServerMode(w.slice(i + 1))) return 'scp';
    }
    if (name === 'rsync' && w.slice(i + 1).includes('--server')) return 'rsync';
  }
  return null;
}

/**
 * The computer's policy for one channel (`policy.sftp`, `policy.portForwarding`,
 * both off unless set true): null when allowed. Decided before anything is
 * provisioned for the channel, and again once the session is open.
 */
export function channelRefusal(computer: Computer, req: ChannelRequest): ChannelRefusal | null {
  const allowed = (flag: string): boolean => computer.policy[flag] === true;
  const refuse = (what: ChannelRefusal['what'], tool: string | null, label: string): ChannelRefusal => ({
    what, tool, label, message: `${label} is not allowed on ${computer.name}`,
  });
  if (req.kind === 'sftp' && !allowed('sftp')) return refuse('file-transfer', 'sftp', 'SFTP');
  if (req.kind === 'exec' && !allowed('sftp')) {
    const tool = fileTransferTool(req.command);
    if (tool) return refuse('file-transfer', tool, `file transfer (${tool})`);
  }
  if (req.kind === 'forward' && !allowed('portForwarding')) return refuse('port-forwarding', null, 'port forwarding');
  return null;
}
