/**
 * AccountStore for Linux hosts, administered over SSH with the shadow tools
 * (useradd, usermod, userdel, gpasswd, chpasswd).
 *
 * - One persistent SSH connection as the provisioning identity (root, or an
 *   account that may run these tools as root), host key pinned: ssh-connection.ts.
 * - Ownership: jitgate accounts carry the marker in GECOS *and* are members of
 *   the marker group (default `jitgate-managed`). GECOS cannot hold `:` (the
 *   passwd field separator; useradd exits 3), so the marker is written with
 *   `:` → `;` (linux-names.ts) and read back decoded. Every mutation except
 *   `create` first proves both, on the target, in the same command that mutates.
 * - Each operation is one SSH exec of a small POSIX sh script: a constant body
 *   after `NAME='value'` assignments, every value validated and single-quoted.
 *   Passwords only ever travel on the command's stdin (to chpasswd).
 * - Tool results are mapped by exit status (useradd(8), userdel(8) "EXIT
 *   VALUES"), and our own checks exit with statuses 200+ (see `Rc`); no
 *   branching on message text.
 */
import type { Logger } from 'pino';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import type { AccountStore, CreateAccountSpec, ExistingAccount, ManagedAccount, MembershipOptions, NameRules } from '../account-store.js';
import { StoreErrors } from '../errors.js';
import {
  assertValidLinuxName,
  assertValidMarker,
  gecosToMarker,
  isValidLinuxName,
  LINUX_NAME_MAX,
  markerToGecos,
  shadowExpiryDate,
  shellQuote,
} from './linux-names.js';
import { SshConnection, type ExecResult } from './ssh-connection.js';

export interface SshStoreOptions {
  readonly host: string;
  /** Default 22. */
  readonly port?: number;
  /** Provisioning identity; must be root (`PermitRootLogin prohibit-password`). */
  readonly username: string;
  /** Private key of the provisioning identity (secret). */
  readonly privateKey: string | Buffer;
  readonly passphrase?: string;
  /** Pinned host key, `SHA256:...` as printed by `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`. */
  readonly hostKeySha256: string;
  /** Group every jitgate account is a member of (created on demand); default `jitgate-managed`. */
  readonly markerGroup?: string;
  /** Configured group name → Linux group name (e.g. `{ admins: 'sudo' }`). */
  readonly groups: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Connect timeout and per-command timeout; default 15 s. */
  readonly timeoutMs?: number;
  /**
   * How chpasswd hashes JIT passwords: `sha512` (default; SHA-512 crypt, 5000
   * rounds) or `system` (the target's default, e.g. yescrypt on Debian 12,
   * ~0.1 s to hash and again at every login). JIT passwords are random (see
   * provisioner/account-names.ts), so slow hashing protects nothing here.
   */
  readonly passwordHash?: 'sha512' | 'system';
  /**
   * NetBIOS domain whose accounts this host sees through winbind/SSSD as
   * `DOMAIN\name` (winbind without `winbind use default domain`). `logOff`
   * then also ends the sessions of that form. Without it, only the plain name
   * is tried (a local account, or a domain account under its short name).
   */
  readonly winbindDomain?: string;
  /** Linux groups whose members jitgate never elevates (root, uid 0, and system accounts below UID_MIN are refused anyway). */
  readonly protectedGroups?: readonly string[];
}

/** Exit statuses of our own checks in the scripts below (shadow tools use 0..14). */
const Rc = {
  NOT_MANAGED: 200,
  NO_ACCOUNT: 201,
  NO_GROUP: 202,
  BUSY: 203,
  GROUPADD_FAILED: 204,
  CHPASSWD_FAILED: 205,
  NOT_ROOT: 206,
  MISSING_TOOL: 207,
  PROTECTED: 208,
  SUDO_BOUND_FAILED: 209,
} as const;

/** NetBIOS domain names (at most 15 characters; no `\`, `/`, `:`, `*`, ... and nothing the shell would see). */
const NETBIOS_DOMAIN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$/;

/** useradd(8) EXIT VALUES. */
const USERADD_BAD_ARGUMENT = 3;
const USERADD_NO_GROUP = 6;
const USERADD_NAME_IN_USE = 9;
/** userdel(8) EXIT VALUES. */
const USERDEL_NO_USER = 6;
const USERDEL_IN_USE = 8;
const USERDEL_HOME_NOT_REMOVED = 12;

/**
 * Shared functions. `$MG` is the marker group. Parameter expansion instead of
 * cut/awk: fewer processes, and nothing re-parses the values.
 */
const PRELUDE = `set -u
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# jgt_account NAME: sets JGT_GECOS (passwd field 5); status 1 when NAME does not exist.
jgt_account() {
  jgt_ent=$(getent passwd "$1") || return 1
  jgt_rest=\${jgt_ent#*:*:*:*:}
  JGT_GECOS=\${jgt_rest%%:*}
}
# jgt_in_group NAME GROUP: status 0 when NAME is a listed member of GROUP.
jgt_in_group() {
  jgt_grp=$(getent group "$2") || return 1
  case ",\${jgt_grp##*:}," in *",$1,"*) return 0 ;; esac
  return 1
}
# jgt_chpasswd: "name:password" on stdin. $PH=sha512: SHA-512 crypt, 5000 rounds
# (the password is random, so a slow hash adds login latency, not security);
# $PH=system: the target's own default (login.defs / PAM, e.g. yescrypt).
jgt_chpasswd() {
  if [ "$PH" = sha512 ]; then chpasswd -c SHA512 -s 5000; else chpasswd; fi
}
# jgt_managed NAME: status 0 when jitgate owns NAME, 1 when NAME is missing; exits ${Rc.NOT_MANAGED} otherwise.
jgt_managed() {
  jgt_account "$1" || return 1
  case "$JGT_GECOS" in 'jitgate;'*) ;; *) exit ${Rc.NOT_MANAGED} ;; esac
  jgt_in_group "$1" "$MG" || exit ${Rc.NOT_MANAGED}
}
# jgt_local NAME: status 0 when NAME is in /etc/passwd itself (not only known through NSS: winbind, SSSD).
jgt_local() {
  while IFS=: read -r jgt_n _; do [ "$jgt_n" = "$1" ] && return 0; done </etc/passwd
  return 1
}
# jgt_kill_user NAME: kill every process of NAME (end its sessions: sshd, shells,
# whatever it left running), by uid. Refuses system accounts (uid below UID_MIN,
# login.defs(5); nobody). Status 0 when none is left, 1 when some would not die.
jgt_kill_user() {
  jgt_ent=$(getent passwd "$1") || return 0
  jgt_rest=\${jgt_ent#*:*:}
  jgt_uid=\${jgt_rest%%:*}
  jgt_min=1000
  if [ -r /etc/login.defs ]; then
    while read -r jgt_k jgt_v _; do [ "$jgt_k" = UID_MIN ] && jgt_min=$jgt_v; done </etc/login.defs
  fi
  case "$jgt_uid" in ''|*[!0-9]*) exit ${Rc.NOT_MANAGED} ;; esac
  case "$jgt_min" in ''|*[!0-9]*) jgt_min=1000 ;; esac
  if [ "$jgt_uid" -lt "$jgt_min" ] || [ "$jgt_uid" -eq 65534 ]; then exit ${Rc.NOT_MANAGED}; fi
  # systemd-logind, where it runs, ends the user's scopes (sessions) too.
  command -v loginctl >/dev/null 2>&1 && loginctl terminate-user "$jgt_uid" >/dev/null 2>&1
  jgt_i=0
  while :; do
    pkill -KILL -U "$jgt_uid" >/dev/null 2>&1
    pkill -KILL -u "$jgt_uid" >/dev/null 2>&1
    pgrep -U "$jgt_uid" >/dev/null 2>&1 || pgrep -u "$jgt_uid" >/dev/null 2>&1 || return 0
    jgt_i=$((jgt_i + 1))
    [ "$jgt_i" -lt 10 ] || return 1
    sleep 0.2
  done
}
# jgt_describe NAME: passwd line, lock state and expiry day (never the hash), groups.
jgt_describe() {
  jgt_ent=$(getent passwd "$1") || return 0
  jgt_sh=$(getent shadow "$1") || jgt_sh=''
  jgt_rest=\${jgt_sh#*:}
  jgt_hash=\${jgt_rest%%:*}
  jgt_rest=\${jgt_rest#*:*:*:*:*:*:}
  jgt_exp=\${jgt_rest%%:*}
  case "$jgt_hash" in '!'*) jgt_lock=L ;; *) jgt_lock=U ;; esac
  [ -n "$jgt_sh" ] || { jgt_lock=N; jgt_exp=''; }
  printf 'A\\t%s\\nS\\t%s\\t%s\\nG\\t%s\\n' "$jgt_ent" "$jgt_lock" "$jgt_exp" "$(id -nG "$1" 2>/dev/null)"
}
`;

/**
 * The sudo fail-safe (docs/jit-engine.md, "What the directory enforces by
 * itself"): a drop-in in /etc/sudoers.d saying
 * `<name> ALL=(ALL:ALL) NOTBEFORE=<lease end + grace> !ALL`. Drop-ins are read
 * last (`@includedir` ends Debian's /etc/sudoers) and the last matching rule
 * wins (sudoers(5)), so from that time sudo itself refuses the account every
 * command whatever groups it is in, with no jitgate process alive; before it
 * the rule does not apply. NOTBEFORE needs sudo ≥ 1.8.20 (Debian 12: 1.9.13).
 * Two files, so that one never takes the other away, both named to sort after
 * an admin rule such as `jitgate` or `jitgate-demo` (drop-ins are read in name
 * order, so a later grant would win): `jitgate-lease-<name>` for
 * an account jitgate created (written with the account, moved by `enable`,
 * removed by `disable` and `delete`), `jitgate-elev-<name>` for an elevation
 * (written only for an account that had no sudo rights before jitgate's first
 * add, taking back only what jitgate gave; removed with the membership).
 * Checked with `visudo -c` in a temporary file and moved into place (sudo
 * skips names with a dot, so the temporary one is never read, and Linux names
 * here never hold one: linux-names.ts); the name is a checked Linux name and
 * goes in as a variable, never spliced into the script. No sudo on the host:
 * nothing. $T: the time as sudoers wants it (YYYYMMDDHHMMSSZ); empty: no fail-safe.
 */
const SUDO_BOUND_FN = `jgt_lease_sudo_file=/etc/sudoers.d/jitgate-lease-$N
# jgt_sudo_bound FILE: (re)write the fail-safe for $N at $T in FILE; status 1 when visudo refuses it.
jgt_sudo_bound() {
  jgt_tmp=$(mktemp /etc/sudoers.d/.jitgate-XXXXXX) || return 1
  printf '%s ALL=(ALL:ALL) NOTBEFORE=%s !ALL\\n' "$N" "$T" >"$jgt_tmp" && chmod 0440 "$jgt_tmp" &&
    visudo -c -q -f "$jgt_tmp" >/dev/null 2>&1 && mv -f "$jgt_tmp" "$1" && return 0
  rm -f "$jgt_tmp"
  return 1
}
jgt_has_sudo() { [ -n "$T" ] && command -v visudo >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && [ -d /etc/sudoers.d ]; }
`;

// $GL: extra groups joined with the creation (space separated, already validated).
// Happy path: one useradd and one chpasswd. Only when useradd reports a
// missing group (exit 6) is it diagnosed: an admin group is the admin's to
// create (reported), the marker group is ours (created, then retried).
const CREATE = `${SUDO_BOUND_FN}jgt_gl=$MG
set -f
for g in $GL; do jgt_gl="$jgt_gl,$g"; done
jgt_useradd() { useradd -m -s /bin/bash -e "$EXP" -c "$GECOS" -G "$jgt_gl" -- "$N" </dev/null >&2; }
jgt_useradd
rc=$?
if [ "$rc" -eq ${USERADD_NO_GROUP} ]; then
  for g in $GL; do
    getent group "$g" >/dev/null || { printf '%s\\n' "$g"; exit ${Rc.NO_GROUP}; }
  done
  groupadd -f "$MG" </dev/null >&2 || exit ${Rc.GROUPADD_FAILED}
  jgt_useradd
  rc=$?
fi
[ "$rc" -eq 0 ] || exit "$rc"
# useradd left the password locked, so nobody can log on yet: the sudo fail-safe goes in
# before the password does. Roll back the account we just made if either fails.
if jgt_has_sudo && ! jgt_sudo_bound "$jgt_lease_sudo_file"; then userdel -r -- "$N" >/dev/null 2>&1; exit ${Rc.SUDO_BOUND_FAILED}; fi
# stdin: "name:password" for chpasswd.
if ! jgt_chpasswd >&2; then userdel -r -- "$N" >/dev/null 2>&1; rm -f "$jgt_lease_sudo_file"; exit ${Rc.CHPASSWD_FAILED}; fi
`;

const ADD_TO_GROUP = `jgt_managed "$N" || exit ${Rc.NO_ACCOUNT}
getent group "$G" >/dev/null || exit ${Rc.NO_GROUP}
jgt_in_group "$N" "$G" && exit 0
gpasswd -a "$N" "$G" </dev/null >/dev/null
`;

const REMOVE_FROM_GROUP = `jgt_managed "$N" || exit 0
getent group "$G" >/dev/null || exit ${Rc.NO_GROUP}
jgt_in_group "$N" "$G" || exit 0
gpasswd -d "$N" "$G" </dev/null >/dev/null
`;

// shadow(5): expire 1 = 1970-01-02, i.e. expired; -L prefixes the hash with '!'.
// A disabled account is expired, which sudo's PAM account check refuses anyway: its fail-safe goes with it.
const DISABLE = `jgt_managed "$N" || exit ${Rc.NO_ACCOUNT}
usermod -L -e 1 -- "$N" </dev/null >&2 || exit
rm -f "/etc/sudoers.d/jitgate-lease-$N"
`;

// The fail-safe moves (or is written) before the account can log on again.
const ENABLE = `${SUDO_BOUND_FN}jgt_managed "$N" || exit ${Rc.NO_ACCOUNT}
if jgt_has_sudo && ! jgt_sudo_bound "$jgt_lease_sudo_file"; then exit ${Rc.SUDO_BOUND_FAILED}; fi
usermod -U -e "$EXP" -- "$N" </dev/null >&2
`;

// chpasswd writes a fresh hash, which would silently unlock a disabled account: re-lock it.
const SET_PASSWORD = `jgt_managed "$N" || exit ${Rc.NO_ACCOUNT}
jgt_sh=$(getent shadow "$N") || jgt_sh=''
case "\${jgt_sh#*:}" in '!'*) jgt_locked=1 ;; *) jgt_locked=0 ;; esac
jgt_chpasswd >&2 || exit ${Rc.CHPASSWD_FAILED}
[ "$jgt_locked" -eq 0 ] || usermod -L -- "$N" </dev/null >&2
`;

const SET_MARKER = `jgt_managed "$N" || exit ${Rc.NO_ACCOUNT}
usermod -c "$GECOS" -- "$N" </dev/null >&2
`;

// The plain name: a local account must be ours (marker + marker group); one that
// only NSS knows (winbind with a default domain, SSSD short names) is a domain
// account, killed when its uid is a user's. $DN: the DOMAIN\name form, when configured.
const LOG_OFF = `if jgt_account "$N"; then
  if jgt_local "$N"; then jgt_managed "$N"; fi
  jgt_kill_user "$N" || exit ${Rc.BUSY}
fi
if [ -n "$DN" ]; then jgt_kill_user "$DN" || exit ${Rc.BUSY}; fi
exit 0
`;

// userdel exits 8 while any process runs as the user (it scans /proc); kill and retry.
// The fail-safe file is removed once the account is gone (or was never made: a crash between
// writing it and rolling back); for an account someone else owns, jgt_managed exits first.
const DELETE = `jgt_managed "$N" || { rm -f "/etc/sudoers.d/jitgate-lease-$N"; exit 0; }
i=0
while :; do
  jgt_kill_user "$N" >/dev/null 2>&1
  userdel -r -- "$N" </dev/null >&2
  rc=$?
  case "$rc" in 0|${USERDEL_NO_USER}|${USERDEL_HOME_NOT_REMOVED}) rm -f "/etc/sudoers.d/jitgate-lease-$N" ;; esac
  [ "$rc" -eq ${USERDEL_IN_USE} ] || exit "$rc"
  i=$((i + 1))
  [ "$i" -lt 10 ] || exit ${Rc.BUSY}
  sleep 0.2
done
`;

const GET = `jgt_describe "$N"
`;

// Elevation of existing accounts. jgt_protected NAME prints why NAME must never
// be elevated (root, a system account, a member of a protected group $PG) and
// returns 0, or returns 1. Membership as id(1) sees it: primary and supplementary.
const PROTECTED_FN = `jgt_protected() {
  jgt_ent=$(getent passwd "$1") || return 1
  jgt_rest=\${jgt_ent#*:*:}
  jgt_uid=\${jgt_rest%%:*}
  case "$jgt_uid" in ''|*[!0-9]*) printf 'no numeric uid\\n'; return 0 ;; esac
  [ "$jgt_uid" -ne 0 ] || { printf 'root (uid 0)\\n'; return 0; }
  jgt_min=1000
  if [ -r /etc/login.defs ]; then
    while read -r jgt_k jgt_v _; do [ "$jgt_k" = UID_MIN ] && jgt_min=$jgt_v; done </etc/login.defs
  fi
  case "$jgt_min" in ''|*[!0-9]*) jgt_min=1000 ;; esac
  if [ "$jgt_uid" -lt "$jgt_min" ] || [ "$jgt_uid" -eq 65534 ]; then printf 'a system account (uid below UID_MIN)\\n'; return 0; fi
  jgt_all=" $(id -nG "$1" 2>/dev/null) "
  set -f
  for g in $PG; do case "$jgt_all" in *" $g "*) printf 'member of protected group %s\\n' "$g"; return 0 ;; esac; done
  return 1
}
`;

// Disabled for elevation (D lines): a locked password hash (usermod -L puts `!` before a
// real hash; a bare `!`, `!!`, `*` or `!*` only means no password was ever set, and such an
// account may still log on with a key), or a shell that refuses logon. An expired account
// is judged from the shadow expiry jgt_describe prints.
const FIND_EXISTING = `${PROTECTED_FN}jgt_account "$N" || exit 0
jgt_describe "$N"
jgt_why=$(jgt_protected "$N") && printf 'P\\t%s\\n' "$jgt_why"
jgt_ent=$(getent passwd "$N")
case "\${jgt_ent##*:}" in */nologin|*/false) printf 'D\\tno login shell\\n' ;; esac
jgt_sh=$(getent shadow "$N") || jgt_sh=''
jgt_rest=\${jgt_sh#*:}
case "\${jgt_rest%%:*}" in '!'|'!!'|'*'|'!*') ;; '!'*) printf 'D\\tpassword locked\\n' ;; esac
exit 0
`;

const IS_MEMBER = `getent group "$G" >/dev/null || exit ${Rc.NO_GROUP}
jgt_account "$N" || { printf 'N\\n'; exit 0; }
case " $(id -nG "$N" 2>/dev/null) " in *" $G "*) printf 'Y\\n' ;; *) printf 'N\\n' ;; esac
`;

// The protection check runs in the same command as the add.
const ADD_MEMBER = `${PROTECTED_FN}${SUDO_BOUND_FN}jgt_sudo_file=/etc/sudoers.d/jitgate-elev-$N
jgt_account "$N" || exit ${Rc.NO_ACCOUNT}
getent group "$G" >/dev/null || exit ${Rc.NO_GROUP}
jgt_protected "$N" && exit ${Rc.PROTECTED}
case " $(id -nG "$N" 2>/dev/null) " in *" $G "*)
  # Already a member: only a fail-safe jitgate wrote moves (the lease was extended).
  if jgt_has_sudo && [ -e "$jgt_sudo_file" ]; then jgt_sudo_bound "$jgt_sudo_file" || exit 1; fi
  exit 0 ;;
esac
# Before the add, so there is no moment with the membership and without its fail-safe.
# Any sudo right at all before the add (sudo -l exits 0 either way: its words tell, in the C locale): no fail-safe.
if jgt_has_sudo && { [ -e "$jgt_sudo_file" ] || ! LC_ALL=C sudo -n -l -U "$N" 2>/dev/null | grep -q 'may run the following commands'; }; then jgt_sudo_bound "$jgt_sudo_file" || exit 1; fi
gpasswd -a "$N" "$G" </dev/null >/dev/null
`;

const REMOVE_MEMBER = `jgt_account "$N" || exit 0
getent group "$G" >/dev/null || exit ${Rc.NO_GROUP}
if jgt_in_group "$N" "$G"; then gpasswd -d "$N" "$G" </dev/null >/dev/null || exit 1; fi
# The membership is gone: so is the fail-safe jitgate wrote for it (a leftover one would deny sudo for good).
rm -f "/etc/sudoers.d/jitgate-elev-$N"
`;

/** `until` as sudoers' NOTBEFORE/NOTAFTER want it: `YYYYMMDDHHMMSSZ` (sudoers(5), generalized time in UTC). */
export function sudoersTime(until: Date): string {
  return until.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:T]/g, '');
}

/** A protection reason printed by jgt_protected, or a generic one if it is not what the script prints. */
function protectionReason(line: string): string {
  const t = line.trim();
  return /^[A-Za-z0-9 ()_.,-]{1,120}$/.test(t) ? t : 'protected';
}

const LIST_MANAGED = `set -f
jgt_grp=$(getent group "$MG") || exit 0
IFS=,
set -- \${jgt_grp##*:}
IFS=' '
for u in "$@"; do
  jgt_account "$u" || continue
  case "$JGT_GECOS" in 'jitgate;'*) jgt_describe "$u" ;; esac
done
`;

const CHECK = `[ "$(id -u)" -eq 0 ] || exit ${Rc.NOT_ROOT}
for c in getent id useradd usermod userdel groupadd gpasswd chpasswd pkill; do
  command -v "$c" >/dev/null 2>&1 || { printf '%s\\n' "$c"; exit ${Rc.MISSING_TOOL}; }
done
set -f
for g in $GL; do
  getent group "$g" >/dev/null || { printf '%s\\n' "$g"; exit ${Rc.NO_GROUP}; }
done
`;

const DAY_MS = 86_400_000;

/** Lines printed by `jgt_describe`, parsed into accounts. Unparsable records are skipped. */
function parseDescribe(stdout: string, groupsByLinuxName: ReadonlyMap<string, string>): ManagedAccount[] {
  const out: ManagedAccount[] = [];
  const lines = stdout.split('\n');
  for (let i = 0; i + 2 < lines.length; i++) {
    const a = lines[i];
    if (a === undefined || !a.startsWith('A\t')) continue;
    const s = lines[i + 1] ?? '';
    const g = lines[i + 2] ?? '';
    if (!s.startsWith('S\t') || !g.startsWith('G\t')) continue;
    i += 2;
    const fields = a.slice(2).split(':');
    const name = fields[0] ?? '';
    if (!isValidLinuxName(name) || fields.length < 7) continue;
    const [, lock = 'N', expire = ''] = s.split('\t');
    const expireDays = /^\d+$/.test(expire) ? Number(expire) : null;
    const expiresAt = expireDays === null ? null : new Date(expireDays * DAY_MS);
    const expired = expiresAt !== null && expiresAt.getTime() <= Date.now();
    const groups = g
      .slice(2)
      .split(' ')
      .map((lg) => groupsByLinuxName.get(lg))
      .filter((c): c is string => c !== undefined);
    out.push({
      name,
      marker: gecosToMarker(fields[4] ?? ''),
      enabled: lock === 'U' && !expired,
      groups: [...new Set(groups)],
      expiresAt,
    });
  }
  return out;
}

function assertPassword(password: string): void {
  // chpasswd reads "name:password" lines: a line break would start a second record.
  if (typeof password !== 'string' || password.length === 0 || /[\r\n\0]/.test(password)) {
    throw new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: 'empty or contains a line break or NUL' });
  }
}

export class SshAccountStore implements AccountStore {
  readonly kind = 'ssh' as const;
  readonly nameRules: NameRules = { maxLength: LINUX_NAME_MAX };
  readonly groupsOnCreate = true;

  readonly #conn: SshConnection;
  readonly #log: Logger;
  readonly #markerGroup: string;
  readonly #groups: ReadonlyMap<string, string>;
  /** Linux group → configured name (several configured names may share a Linux group; the first wins). */
  readonly #groupsByLinuxName: ReadonlyMap<string, string>;
  readonly #passwordHash: 'sha512' | 'system';
  readonly #winbindDomain: string | undefined;
  readonly #protectedGroups: string;

  constructor(opts: SshStoreOptions) {
    const markerGroup = opts.markerGroup ?? 'jitgate-managed';
    assertValidLinuxName(markerGroup, 'group');
    const groups = new Map<string, string>();
    const byLinux = new Map<string, string>();
    for (const [configured, linux] of Object.entries(opts.groups)) {
      assertValidLinuxName(linux, 'group');
      if (linux === markerGroup) {
        throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `group ${configured} must not be the marker group` });
      }
      groups.set(configured, linux);
      if (!byLinux.has(linux)) byLinux.set(linux, configured);
    }
    if (opts.winbindDomain !== undefined && !NETBIOS_DOMAIN.test(opts.winbindDomain)) {
      throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: 'winbindDomain must be a NetBIOS domain name' });
    }
    this.#winbindDomain = opts.winbindDomain;
    for (const g of opts.protectedGroups ?? []) assertValidLinuxName(g, 'group');
    this.#protectedGroups = (opts.protectedGroups ?? []).join(' ');
    this.#markerGroup = markerGroup;
    this.#passwordHash = opts.passwordHash ?? 'sha512';
    this.#groups = groups;
    this.#groupsByLinuxName = byLinux;
    this.#conn = new SshConnection({
      host: opts.host,
      port: opts.port ?? 22,
      username: opts.username,
      privateKey: opts.privateKey,
      ...(opts.passphrase !== undefined ? { passphrase: opts.passphrase } : {}),
      hostKeySha256: opts.hostKeySha256,
      logger: opts.logger,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
    this.#log = opts.logger.child({ component: 'ssh-store', store: this.#conn.store });
  }

  // --- plumbing ---------------------------------------------------------------

  /** Runs PRELUDE + body with `vars` as quoted shell assignments. */
  async #run(operation: string, vars: Record<string, string>, body: string, stdin?: string): Promise<ExecResult> {
    const assignments = Object.entries({ MG: this.#markerGroup, PH: this.#passwordHash, ...vars })
      .map(([k, v]) => {
        if (!/^[A-Z][A-Z0-9_]*$/.test(k)) throw new Error(`bad script variable ${k}`);
        return `${k}=${shellQuote(v)}`;
      })
      .join('\n');
    const started = performance.now();
    const res = await this.#conn.exec(`${assignments}\n${PRELUDE}${body}`, stdin === undefined ? {} : { stdin });
    this.#log.debug({ operation, code: res.code, ms: Math.round(performance.now() - started) }, 'ssh store command finished');
    return res;
  }

  #failed(operation: string, res: ExecResult, name?: string): JitgateError {
    // stderr of the shadow tools names accounts and groups, never passwords.
    this.#log.warn({ operation, account: name, code: res.code, signal: res.signal, stderr: res.stderr.slice(0, 500) }, 'ssh store command failed');
    const reason = res.code === null ? `${operation}: killed by ${res.signal ?? 'signal'}` : `${operation}: exit ${res.code}`;
    return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#conn.store, reason });
  }

  /** Common mapping for our own statuses; returns the error, or null for a status the caller must handle. */
  #mapRc(operation: string, res: ExecResult, name: string, group?: string): JitgateError | null {
    switch (res.code) {
      case Rc.NOT_MANAGED:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_NOT_MANAGED, { name });
      case Rc.NO_ACCOUNT:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT, { name });
      case Rc.NO_GROUP:
        return new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: group ?? '' });
      case Rc.CHPASSWD_FAILED:
        this.#log.warn({ operation, account: name, stderr: res.stderr.slice(0, 500) }, 'chpasswd refused the password');
        return new JitgateError(StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY, { reason: 'chpasswd refused the password' });
      case Rc.SUDO_BOUND_FAILED:
        this.#log.warn({ operation, account: name, stderr: res.stderr.slice(0, 500) }, 'the sudo fail-safe could not be written');
        return new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#conn.store, reason: `${operation}: the sudo fail-safe in /etc/sudoers.d could not be written` });
      default:
        return null;
    }
  }

  #linuxGroup(group: string): string {
    const linux = this.#groups.get(group);
    if (linux === undefined) throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group });
    return linux;
  }

  // --- reads ------------------------------------------------------------------

  async get(name: string): Promise<ManagedAccount | null> {
    assertValidLinuxName(name, 'user');
    const res = await this.#run('get', { N: name }, GET);
    if (res.code !== 0) throw this.#failed('get', res, name);
    return parseDescribe(res.stdout, this.#groupsByLinuxName).find((a) => a.name === name) ?? null;
  }

  async listManaged(): Promise<ManagedAccount[]> {
    const res = await this.#run('listManaged', {}, LIST_MANAGED);
    if (res.code !== 0) throw this.#failed('listManaged', res);
    return parseDescribe(res.stdout, this.#groupsByLinuxName).filter((a) => a.marker.startsWith('jitgate:'));
  }

  // --- elevation: existing accounts --------------------------------------------

  async findExisting(name: string): Promise<ExistingAccount | null> {
    assertValidLinuxName(name, 'user');
    const res = await this.#run('findExisting', { N: name, PG: this.#protectedGroups }, FIND_EXISTING);
    if (res.code !== 0) throw this.#failed('findExisting', res, name);
    const a = parseDescribe(res.stdout, this.#groupsByLinuxName).find((x) => x.name === name);
    if (!a) return null;
    const lines = res.stdout.split('\n');
    const p = lines.find((l) => l.startsWith('P\t'));
    // Not jgt_describe's lock flag: an account that never had a password (key logon only) is not disabled.
    const expired = a.expiresAt !== null && a.expiresAt.getTime() <= Date.now();
    const enabled = !expired && !lines.some((l) => l.startsWith('D\t'));
    return { name: a.name, enabled, protectedReason: p === undefined ? null : protectionReason(p.slice(2)), groups: a.groups };
  }

  async isMember(name: string, group: string): Promise<boolean> {
    assertValidLinuxName(name, 'user');
    const linux = this.#linuxGroup(group);
    const res = await this.#run('isMember', { N: name, G: linux }, IS_MEMBER);
    if (res.code !== 0) throw this.#mapRc('isMember', res, name, group) ?? this.#failed('isMember', res, name);
    return res.stdout.trim() === 'Y';
  }

  async addMember(name: string, group: string, opts: MembershipOptions = {}): Promise<void> {
    assertValidLinuxName(name, 'user');
    const linux = this.#linuxGroup(group);
    const res = await this.#run('addMember', { N: name, G: linux, PG: this.#protectedGroups, T: opts.until ? sudoersTime(opts.until) : '' }, ADD_MEMBER);
    if (res.code === Rc.PROTECTED) throw new JitgateError(StoreErrors.JIT_ERR_STORE_PROTECTED_ACCOUNT, { name, reason: protectionReason(res.stdout) });
    if (res.code !== 0) throw this.#mapRc('addMember', res, name, group) ?? this.#failed('addMember', res, name);
    this.#log.info({ account: name, group, linuxGroup: linux }, 'linux existing account added to group (elevation)');
  }

  async removeMember(name: string, group: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const linux = this.#linuxGroup(group);
    const res = await this.#run('removeMember', { N: name, G: linux }, REMOVE_MEMBER);
    if (res.code === Rc.NO_GROUP) {
      this.#log.warn({ account: name, group, linuxGroup: linux }, 'linux group missing on target; nothing to remove');
      return;
    }
    if (res.code !== 0) throw this.#mapRc('removeMember', res, name, group) ?? this.#failed('removeMember', res, name);
    this.#log.info({ account: name, group, linuxGroup: linux }, 'linux existing account removed from group (elevation)');
  }

  // --- mutations ----------------------------------------------------------------

  async create(spec: CreateAccountSpec): Promise<void> {
    assertValidLinuxName(spec.name, 'user');
    assertValidMarker(spec.marker);
    assertPassword(spec.password);
    const linuxGroups = [...new Set((spec.groups ?? []).map((g) => this.#linuxGroup(g)))];
    // T: the sudo fail-safe at the same instant as the account's expiry (lease + grace), to the second.
    const vars = { N: spec.name, GECOS: markerToGecos(spec.marker), EXP: shadowExpiryDate(spec.expiresAt), GL: linuxGroups.join(' '), T: sudoersTime(spec.expiresAt) };
    const res = await this.#run('create', vars, CREATE, `${spec.name}:${spec.password}\n`);
    switch (res.code) {
      case 0:
        break;
      case Rc.NO_GROUP: {
        const missing = res.stdout.trim();
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: this.#groupsByLinuxName.get(missing) ?? (isValidLinuxName(missing) ? missing : '?') });
      }
      case USERADD_NAME_IN_USE:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: spec.name });
      case USERADD_NO_GROUP:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: this.#markerGroup });
      case USERADD_BAD_ARGUMENT:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_UNWILLING, { reason: 'useradd rejected an argument' });
      default:
        throw this.#mapRc('create', res, spec.name) ?? this.#failed('create', res, spec.name);
    }
    this.#log.info({ account: spec.name, marker: spec.marker, expires: vars.EXP, sudoUntil: vars.T, groups: spec.groups ?? [] }, 'linux account created');
  }

  async addToGroup(name: string, group: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const linux = this.#linuxGroup(group);
    const res = await this.#run('addToGroup', { N: name, G: linux }, ADD_TO_GROUP);
    if (res.code !== 0) throw this.#mapRc('addToGroup', res, name, group) ?? this.#failed('addToGroup', res, name);
    this.#log.info({ account: name, group, linuxGroup: linux }, 'linux group membership added');
  }

  async removeFromGroup(name: string, group: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const linux = this.#linuxGroup(group);
    const res = await this.#run('removeFromGroup', { N: name, G: linux }, REMOVE_FROM_GROUP);
    if (res.code === Rc.NO_GROUP) {
      // No such group on the host, so no membership to remove; worth an operator's look.
      this.#log.warn({ account: name, group, linuxGroup: linux }, 'linux group missing on target; nothing to remove');
      return;
    }
    if (res.code !== 0) throw this.#mapRc('removeFromGroup', res, name, group) ?? this.#failed('removeFromGroup', res, name);
    this.#log.info({ account: name, group, linuxGroup: linux }, 'linux group membership removed');
  }

  async disable(name: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const res = await this.#run('disable', { N: name }, DISABLE);
    if (res.code !== 0) throw this.#mapRc('disable', res, name) ?? this.#failed('disable', res, name);
    this.#log.info({ account: name }, 'linux account disabled');
  }

  async enable(name: string, expiresAt: Date): Promise<void> {
    assertValidLinuxName(name, 'user');
    const exp = shadowExpiryDate(expiresAt);
    const res = await this.#run('enable', { N: name, EXP: exp, T: sudoersTime(expiresAt) }, ENABLE);
    if (res.code !== 0) throw this.#mapRc('enable', res, name) ?? this.#failed('enable', res, name);
    this.#log.info({ account: name, expires: exp }, 'linux account enabled');
  }

  async setPassword(name: string, password: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    assertPassword(password);
    const res = await this.#run('setPassword', { N: name }, SET_PASSWORD, `${name}:${password}\n`);
    if (res.code !== 0) throw this.#mapRc('setPassword', res, name) ?? this.#failed('setPassword', res, name);
    this.#log.info({ account: name }, 'linux account password reset');
  }

  async setMarker(name: string, marker: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const gecos = markerToGecos(marker);
    const res = await this.#run('setMarker', { N: name, GECOS: gecos }, SET_MARKER);
    if (res.code !== 0) throw this.#mapRc('setMarker', res, name) ?? this.#failed('setMarker', res, name);
    this.#log.info({ account: name, marker }, 'linux account marker updated');
  }

  /**
   * Kill every process of `name` (its SSH sessions included). The engine
   * passes the plain sAMAccountName for a domain account: that name is tried
   * as the host sees it (winbind default domain / SSSD short names), and
   * `DOMAIN\name` too when `winbindDomain` is configured. A local account
   * must be ours; system accounts (uid below UID_MIN) are refused.
   */
  async logOff(name: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const dn = this.#winbindDomain === undefined ? '' : `${this.#winbindDomain}\\${name}`;
    const res = await this.#run('logOff', { N: name, DN: dn }, LOG_OFF);
    switch (res.code) {
      case 0:
        this.#log.info({ account: name, ...(dn ? { domainForm: dn } : {}) }, 'linux account logged off');
        return;
      case Rc.BUSY:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_USER_BUSY, { name });
      default:
        throw this.#mapRc('logOff', res, name) ?? this.#failed('logOff', res, name);
    }
  }

  async delete(name: string): Promise<void> {
    assertValidLinuxName(name, 'user');
    const res = await this.#run('delete', { N: name }, DELETE);
    switch (res.code) {
      case 0:
        this.#log.info({ account: name }, 'linux account deleted');
        return;
      case USERDEL_NO_USER:
        return;
      case USERDEL_HOME_NOT_REMOVED:
        // The passwd/shadow/group entries are gone; only the home directory is left behind.
        this.#log.warn({ account: name, stderr: res.stderr.slice(0, 500) }, 'linux account deleted but its home directory was not removed');
        return;
      case Rc.BUSY:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_USER_BUSY, { name });
      default:
        throw this.#mapRc('delete', res, name) ?? this.#failed('delete', res, name);
    }
  }

  // --- lifecycle --------------------------------------------------------------------

  async check(): Promise<void> {
    const res = await this.#run('check', { GL: [...new Set(this.#groups.values())].join(' ') }, CHECK);
    const what = res.stdout.trim().split('\n')[0] ?? '';
    switch (res.code) {
      case 0:
        return;
      case Rc.NOT_ROOT:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#conn.store, reason: 'the provisioning identity is not root' });
      case Rc.MISSING_TOOL:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_FAILED, { store: this.#conn.store, reason: `required command ${isValidLinuxName(what) ? what : '?'} not found` });
      case Rc.NO_GROUP:
        throw new JitgateError(StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP, { group: isValidLinuxName(what) ? what : '?' });
      default:
        throw this.#failed('check', res);
    }
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
