/**
 * In-memory model of a Windows machine's local users and groups, with the
 * rules Windows itself enforces (SAM name rules, name collisions with
 * users and groups, case-insensitive names, the default password policy,
 * 48-character descriptions), and an interpreter for the jitgate account
 * script's stdin protocol that mirrors provisioner/winrm/scripts.ts.
 */
import type { ScriptAccount, ScriptInput, ScriptOutput } from '../../provisioner/winrm/scripts.js';

export interface ModelUser {
  name: string;
  sid: string;
  description: string;
  password: string;
  enabled: boolean;
  accountExpires: Date | null;
  passwordNeverExpires: boolean;
  hasProfile: boolean;
}

export interface ModelGroup {
  name: string;
  sid: string;
  /** Member SIDs. */
  members: Set<string>;
}

/** A logon session as `quser` lists it (RDP or console; `Disc` = disconnected, token still alive). */
export interface ModelSession {
  id: number;
  /** `WINTEST` for a local account, the NetBIOS domain for a domain account. */
  domain: string;
  user: string;
  state: 'Active' | 'Disc';
}

/** A process and its owner, as `Get-Process -IncludeUserName` shows it (`DOMAIN\user`). */
export interface ModelProcess {
  pid: number;
  sessionId: number;
  domain: string;
  user: string;
  image: string;
}

/** Domain principals with RIDs below 1000, which the script refuses to log off. */
const BUILT_IN_DOMAIN_NAMES = new Set(['administrator', 'guest', 'krbtgt', 'defaultaccount']);

export class WindowsError extends Error {
  constructor(
    /** The .NET exception type LocalAccounts cmdlets throw. */
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

let ridCounter = 1000;

export class WindowsModel {
  readonly users = new Map<string, ModelUser>();
  readonly groups = new Map<string, ModelGroup>();
  readonly machineSid = 'S-1-5-21-1111111111-2222222222-3333333333';
  /** Every applied script operation, for assertions. */
  readonly journal: { op: string; name?: string; ok: boolean }[] = [];
  readonly sessions: ModelSession[] = [];
  readonly processes: ModelProcess[] = [];
  #nextSession = 2;
  #nextPid = 4000;

  constructor(readonly computerName = 'WINTEST') {
    for (const [name, sid] of [
      ['Administrators', 'S-1-5-32-544'],
      ['Users', 'S-1-5-32-545'],
      ['Remote Desktop Users', 'S-1-5-32-555'],
    ] as const) {
      this.groups.set(name.toLowerCase(), { name, sid, members: new Set() });
    }
    // A pre-existing account jitgate did not create.
    this.addUser({ name: 'Administrator', description: 'Built-in account for administering the computer', password: 'Adm1n!Passw0rd', rid: 500 });
    this.groupBy('S-1-5-32-544')?.members.add(this.userBy('Administrator')?.sid ?? '');
  }

  userBy(name: string): ModelUser | undefined {
    return this.users.get(name.toLowerCase());
  }

  groupBy(nameOrSid: string): ModelGroup | undefined {
    if (/^S-1-/.test(nameOrSid)) return [...this.groups.values()].find((g) => g.sid === nameOrSid);
    return this.groups.get(nameOrSid.toLowerCase());
  }

  /** New-LocalUser's checks (SAM rules), then the account. */
  addUser(u: { name: string; description: string; password: string; accountExpires?: Date | null; rid?: number }): ModelUser {
    const n = u.name;
    const control = [...n].some((c) => c.charCodeAt(0) < 0x20);
    if (n.length === 0 || n.length > 20 || /["/\\[\]:;|=,+*?<>@]/.test(n) || control || n.endsWith('.')) {
      throw new WindowsError('InvalidNameException', `The name ${n} is invalid`);
    }
    if (this.users.has(n.toLowerCase())) throw new WindowsError('UserExistsException', `User ${n} already exists.`);
    if (this.groups.has(n.toLowerCase())) throw new WindowsError('NameInUseException', `The name ${n} is already in use.`);
    if (u.description.length > 48) throw new WindowsError('InvalidParametersException', 'The description is too long.');
    this.checkPassword(n, u.password);
    const user: ModelUser = {
      name: n,
      sid: `${this.machineSid}-${u.rid ?? ridCounter++}`,
      description: u.description,
      password: u.password,
      enabled: true,
      accountExpires: u.accountExpires ?? null,
      passwordNeverExpires: false,
      hasProfile: true,
    };
    this.users.set(n.toLowerCase(), user);
    return user;
  }

  /** Default "password must meet complexity requirements" + minimum length 8 (secpol defaults on servers). */
  checkPassword(name: string, password: string): void {
    const classes = [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(password)).length;
    if (password.length < 8 || classes < 3 || password.toLowerCase().includes(name.toLowerCase())) {
      throw new WindowsError('InvalidPasswordException', 'The password does not meet the password policy requirements.');
    }
  }

  removeUser(name: string): void {
    const u = this.userBy(name);
    if (!u) return;
    for (const g of this.groups.values()) g.members.delete(u.sid);
    this.users.delete(name.toLowerCase());
  }

  /**
   * An interactive logon (RDP) of a local account, or of `domain\name` when
   * `domain` is given (a domain account on a domain-joined computer): a
   * session with explorer.exe and rdpclip.exe, plus a process it started.
   * A local logon needs an enabled, unexpired account and its password.
   */
  logOn(name: string, opts: { password?: string; domain?: string; state?: 'Active' | 'Disc' } = {}): ModelSession {
    let domain = opts.domain ?? this.computerName;
    let user = name;
    if (opts.domain === undefined) {
      const u = this.userBy(name);
      if (!u || !u.enabled || u.password !== opts.password || (u.accountExpires !== null && u.accountExpires <= new Date())) {
        throw new WindowsError('UnauthorizedAccessException', 'The user name or password is incorrect.');
      }
      user = u.name;
      domain = this.computerName;
    }
    const session: ModelSession = { id: this.#nextSession++, domain, user, state: opts.state ?? 'Active' };
    this.sessions.push(session);
    for (const image of ['explorer.exe', 'rdpclip.exe', 'mmc.exe']) {
      this.processes.push({ pid: this.#nextPid++, sessionId: session.id, domain, user, image });
    }
    return session;
  }

  /** Sessions and processes of `domain\user` (case-insensitive, as Windows compares names). */
  logonsOf(user: string, domain = this.computerName): { sessions: ModelSession[]; processes: ModelProcess[] } {
    const is = (x: { domain: string; user: string }): boolean => x.domain.toLowerCase() === domain.toLowerCase() && x.user.toLowerCase() === user.toLowerCase();
    return { sessions: this.sessions.filter(is), processes: this.processes.filter(is) };
  }

  /** `logoff <id>`: the session and every process in it end. */
  logOffSession(id: number): void {
    this.sessions.splice(0, this.sessions.length, ...this.sessions.filter((x) => x.id !== id));
    this.processes.splice(0, this.processes.length, ...this.processes.filter((x) => x.sessionId !== id));
  }

  stopProcess(pid: number): void {
    this.processes.splice(0, this.processes.length, ...this.processes.filter((x) => x.pid !== pid));
  }

  groupsOf(u: ModelUser): ModelGroup[] {
    return [...this.groups.values()].filter((g) => g.members.has(u.sid));
  }
}

/**
 * Apply one script invocation (the decoded stdin JSON) to the model, as the
 * PowerShell script would. Returns the script's result object.
 */
export function interpretAccountScript(model: WindowsModel, p: ScriptInput): ScriptOutput {
  const fail = (error: ScriptOutput & { ok: false }): ScriptOutput => error;
  if (p.v !== 1) return fail({ ok: false, error: 'bad_input', detail: 'unsupported version' });
  const prefix = p.markerPrefix;
  const managed = (u: ModelUser): boolean => u.description.startsWith(prefix);
  const info = (u: ModelUser): ScriptAccount => ({
    name: u.name,
    description: u.description,
    enabled: u.enabled,
    expiresMs: u.accountExpires ? u.accountExpires.getTime() : null,
    groups: Object.entries(p.groups)
      .filter(([, g]) => model.groupBy(g)?.members.has(u.sid))
      .map(([k]) => k),
  });
  const name = p.name ?? '';
  const result = ((): ScriptOutput => {
    try {
      switch (p.op) {
        case 'create': {
          if (model.userBy(name)) return fail({ ok: false, error: 'exists', detail: name });
          const u = model.addUser({
            name,
            description: p.marker ?? '',
            password: p.password ?? '',
            accountExpires: new Date(p.expiresMs ?? 0),
          });
          u.passwordNeverExpires = true;
          return { ok: true };
        }
        case 'addToGroup':
        case 'removeFromGroup': {
          const u = model.userBy(name);
          if (!u) return p.op === 'removeFromGroup' ? { ok: true } : fail({ ok: false, error: 'no_such_account', detail: name });
          if (!managed(u)) return fail({ ok: false, error: 'not_managed', detail: name });
          const g = model.groupBy(p.group ?? '');
          if (!g) return fail({ ok: false, error: 'no_such_group', detail: p.group });
          if (p.op === 'addToGroup') g.members.add(u.sid);
          else g.members.delete(u.sid);
          return { ok: true };
        }
        case 'disable':
        case 'enable':
        case 'setPassword':
        case 'setMarker': {
          const u = model.userBy(name);
          if (!u) return fail({ ok: false, error: 'no_such_account', detail: name });
          if (!managed(u)) return fail({ ok: false, error: 'not_managed', detail: name });
          if (p.op === 'disable') u.enabled = false;
          if (p.op === 'enable') {
            u.accountExpires = new Date(p.expiresMs ?? 0);
            u.enabled = true;
          }
          if (p.op === 'setPassword') {
            model.checkPassword(u.name, p.password ?? '');
            u.password = p.password ?? '';
          }
          if (p.op === 'setMarker') {
            if ((p.marker ?? '').length > 48) throw new WindowsError('InvalidParametersException', 'too long');
            u.description = p.marker ?? '';
          }
          return { ok: true };
        }
        case 'delete': {
          const u = model.userBy(name);
          if (!u) return { ok: true };
          if (!managed(u)) return fail({ ok: false, error: 'not_managed', detail: name });
          model.removeUser(u.name);
          return { ok: true };
        }
        case 'get': {
          const u = model.userBy(name);
          return { ok: true, account: u ? info(u) : null };
        }
        case 'list':
          return { ok: true, accounts: [...model.users.values()].filter(managed).map(info) };
        case 'logOff': {
          // As the script: a local account must be ours; otherwise the name is a domain
          // account's (never a built-in one), matched by its non-local domain part.
          const u = model.userBy(name);
          if (u && !managed(u)) return fail({ ok: false, error: 'not_managed', detail: name });
          if (!u && BUILT_IN_DOMAIN_NAMES.has(name.toLowerCase())) return fail({ ok: false, error: 'not_managed', detail: name });
          const local = model.computerName.toLowerCase();
          const ours = (x: { domain: string; user: string }): boolean =>
            x.user.toLowerCase() === name.toLowerCase() && (u ? x.domain.toLowerCase() === local : x.domain.toLowerCase() !== local);
          const sessions = model.sessions.filter(ours);
          for (const sess of sessions) model.logOffSession(sess.id);
          const procs = model.processes.filter(ours);
          for (const pr of procs) model.stopProcess(pr.pid);
          return { ok: true, loggedOff: { sessions: sessions.length, processes: procs.length } };
        }
        case 'findExisting':
        case 'addMember': {
          const u = model.userBy(name);
          const rid = u ? Number(u.sid.split('-').pop()) : 0;
          const why = !u
            ? null
            : rid === 500
              ? 'the built-in Administrator (RID 500)'
              : rid < 1000
                ? 'a built-in account (RID below 1000)'
                : (p.protectedGroups ?? []).some((g) => model.groupBy(g)?.members.has(u.sid))
                  ? 'a member of a protected group'
                  : null;
          if (p.op === 'findExisting') {
            if (!u) return { ok: true, existing: null };
            const i = info(u);
            return { ok: true, existing: { name: i.name, enabled: i.enabled, expiresMs: i.expiresMs, groups: i.groups, protected: why } };
          }
          if (!u) return fail({ ok: false, error: 'no_such_account', detail: name });
          if (why) return fail({ ok: false, error: 'protected', detail: why });
          const g = model.groupBy(p.group ?? '');
          if (!g) return fail({ ok: false, error: 'no_such_group', detail: p.group });
          g.members.add(u.sid);
          return { ok: true };
        }
        case 'isMember':
        case 'removeMember': {
          const g = model.groupBy(p.group ?? '');
          if (!g) return fail({ ok: false, error: 'no_such_group', detail: p.group });
          const u = model.userBy(name);
          if (p.op === 'isMember') return { ok: true, member: !!u && g.members.has(u.sid) };
          if (u) g.members.delete(u.sid);
          return { ok: true };
        }
        case 'check':
          return { ok: true, computer: model.computerName };
        default:
          return fail({ ok: false, error: 'bad_input', detail: `unknown op ${String(p.op)}` });
      }
    } catch (err) {
      if (err instanceof WindowsError) {
        const map: Record<string, ScriptOutput & { ok: false }> = {
          UserExistsException: { ok: false, error: 'exists' },
          InvalidPasswordException: { ok: false, error: 'password_policy' },
          GroupNotFoundException: { ok: false, error: 'no_such_group' },
          InvalidNameException: { ok: false, error: 'invalid_name' },
        };
        return { ...(map[err.type] ?? { ok: false, error: 'failed' }), detail: `${err.type}: ${err.message}` };
      }
      throw err;
    }
  })();
  model.journal.push({ op: p.op, name: p.name, ok: result.ok });
  return result;
}
