/**
 * Dropping root for good, QEMU's way (`-runas`): once every device is open and restricted, the
 * process becomes an unprivileged user and proves it did.
 *
 * Order: setgroups([]) first (it needs CAP_SETGID, gone after setgid/setuid), then setgid, then
 * setuid (after it no capability is left to change groups). setuid(2) from euid 0 to a non-zero uid
 * sets the real, effective and saved uid and clears the permitted, effective and ambient
 * capabilities (capabilities(7), "Effect of user ID changes"). glibc applies each set*id call to
 * every thread of the process (its setxid broadcast), so libuv's pool and the addon's waiter thread
 * change too; the check below reads every thread's /proc status to prove it rather than trust it.
 * Then PR_SET_NO_NEW_PRIVS, so no later execve can gain privileges back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { ConfigError } from '../../backend.js';
import { native } from '../../native/index.js';

/** The unprivileged account to become. */
export interface RunAs {
  /** As given on the command line (for messages). */
  readonly spec: string;
  readonly uid: number;
  readonly gid: number;
}

/** A step of the drop failed, or the process still holds a privilege after it: one line. */
export class PrivilegeDropError extends ConfigError {
  override readonly name = 'PrivilegeDropError';
}

/** passwd and group entries, name → id (and a user's primary group). */
export interface Accounts {
  user(name: string): { uid: number; gid: number } | undefined;
  group(name: string): number | undefined;
}

function parseColonFile(text: string): string[][] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
}

/** Accounts from /etc/passwd and /etc/group (the files getpwnam/getgrnam read on a plain system). */
export function systemAccounts(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): Accounts {
  const text = (path: string): string => {
    try {
      return read(path);
    } catch {
      return '';
    }
  };
  return {
    user(name) {
      const e = parseColonFile(text('/etc/passwd')).find((f) => f[0] === name);
      return e ? { uid: Number(e[2]), gid: Number(e[3]) } : undefined;
    },
    group(name) {
      const e = parseColonFile(text('/etc/group')).find((f) => f[0] === name);
      return e ? Number(e[2]) : undefined;
    },
  };
}

const NUMERIC_ID = /^(0|[1-9]\d{0,9})$/;
/** (uid_t)-1 means "unchanged" to set*id(2): never a target. */
const MAX_ID = 0xfffffffe;

function numericId(s: string): number | undefined {
  if (!NUMERIC_ID.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

/**
 * `USER[:GROUP]`, names or numbers; without GROUP the user's primary group (a numeric user then
 * needs its group spelled out). Root (uid or gid 0) is refused: that would drop nothing.
 */
export function resolveRunAs(spec: string, accounts: Accounts = systemAccounts()): RunAs {
  const parts = spec.split(':');
  const [userPart = '', groupPart] = parts;
  if (parts.length > 2 || userPart === '' || groupPart === '') throw new PrivilegeDropError(`--run-as wants USER[:GROUP], got '${spec}'`);
  const entry = accounts.user(userPart);
  const uid = numericId(userPart) ?? entry?.uid;
  if (uid === undefined) throw new PrivilegeDropError(`--run-as: no user '${userPart}' in /etc/passwd`);
  let gid: number | undefined;
  if (groupPart === undefined) {
    gid = entry?.gid;
    if (gid === undefined) throw new PrivilegeDropError(`--run-as ${spec}: a numeric user needs its group (USER:GROUP)`);
  } else {
    gid = numericId(groupPart) ?? accounts.group(groupPart);
    if (gid === undefined) throw new PrivilegeDropError(`--run-as: no group '${groupPart}' in /etc/group`);
  }
  if (uid === 0 || gid === 0) throw new PrivilegeDropError(`--run-as ${spec} is root (uid ${uid}, gid ${gid}): name an unprivileged user and group`);
  return { spec, uid, gid };
}

/** The process credential calls the drop makes; the tests put a recording fake behind it. */
export interface CredentialOps {
  geteuid(): number;
  setgroups(groups: number[]): void;
  setgid(gid: number): void;
  setuid(uid: number): void;
  setNoNewPrivs(): void;
  /** The thread ids in /proc/self/task: listed before the drop (afterwards the listing may be refused). */
  threadIds(): string[];
  /** /proc/self/task/TID/status, or undefined when that thread has exited. */
  threadStatus(tid: string): string | undefined;
}

export const processCredentials: CredentialOps = {
  geteuid: () => process.geteuid?.() ?? -1,
  setgroups: (groups) => { process.setgroups?.(groups); },
  setgid: (gid) => { process.setgid?.(gid); },
  setuid: (uid) => { process.setuid?.(uid); },
  setNoNewPrivs: () => { native.setNoNewPrivs(); },
  threadIds: () => readdirSync('/proc/self/task'),
  threadStatus: (tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // exited: holds nothing
      throw e;
    }
  },
};

/**
 * Status of each thread listed before the drop. Listing /proc/self/task after it can be refused
 * (seen in a Xen dom0: EACCES), while each thread's status stays readable. Threads started after
 * the drop are started by dropped threads and inherit their credentials.
 */
function statusesOf(tids: readonly string[], ops: CredentialOps): Map<string, string> {
  const out = new Map<string, string>();
  for (const tid of tids) {
    const status = ops.threadStatus(tid);
    if (status !== undefined) out.set(tid, status);
  }
  return out;
}

function step(what: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    throw new PrivilegeDropError(`dropping privileges: ${what} failed: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
}

/** Drops to `target` and proves it (see the file comment for the order); throws one line on any failure. */
export function dropPrivileges(target: RunAs, ops: CredentialOps = processCredentials): void {
  if (ops.geteuid() !== 0) throw new PrivilegeDropError(`--run-as ${target.spec} needs xvgpu started as root (euid is ${ops.geteuid()})`);
  let tids: string[] = [];
  step('listing /proc/self/task', () => { tids = ops.threadIds(); });
  step('setgroups([])', () => { ops.setgroups([]); });
  step(`setgid(${target.gid})`, () => { ops.setgid(target.gid); });
  step(`setuid(${target.uid})`, () => { ops.setuid(target.uid); });
  step('prctl(PR_SET_NO_NEW_PRIVS)', () => { ops.setNoNewPrivs(); });
  const regained = tryRegainRoot(ops);
  if (regained) throw new PrivilegeDropError(`dropping privileges: setuid(0) still succeeds after becoming ${target.spec}`);
  let statuses = new Map<string, string>();
  step('reading /proc/self/task/*/status', () => { statuses = statusesOf(tids, ops); });
  const bad = privilegeLeft(target, statuses);
  if (bad !== undefined) throw new PrivilegeDropError(`dropping privileges: ${bad}`);
}

function tryRegainRoot(ops: CredentialOps): boolean {
  try {
    ops.setuid(0);
    return true;
  } catch {
    return false;
  }
}

/** The status fields that must read exactly so in every thread after the drop. */
function expectedFields(target: RunAs): [string, RegExp, string][] {
  const ids = (n: number): RegExp => new RegExp(`^${n}\\s+${n}\\s+${n}\\s+${n}$`);
  const zero = /^0+$/;
  return [
    ['Uid', ids(target.uid), `uid ${target.uid} (real, effective, saved, fs)`],
    ['Gid', ids(target.gid), `gid ${target.gid} (real, effective, saved, fs)`],
    ['Groups', /^$/, 'no supplementary groups'],
    ['CapPrm', zero, 'no permitted capabilities'],
    ['CapEff', zero, 'no effective capabilities'],
    ['CapAmb', zero, 'no ambient capabilities'],
  ];
}

function field(status: string, name: string): string | undefined {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

/**
 * What privilege some thread still has, as one phrase, or undefined when none: every thread must
 * show the target ids, no groups and no capabilities; the main thread (the one that would execve)
 * must have NoNewPrivs set.
 */
export function privilegeLeft(target: RunAs, statuses: ReadonlyMap<string, string>, mainTid = String(process.pid)): string | undefined {
  if (!statuses.has(mainTid)) return `no status for the main thread ${mainTid} (/proc not mounted?)`;
  for (const [tid, status] of statuses) {
    for (const [name, want, meaning] of expectedFields(target)) {
      const got = field(status, name);
      if (got === undefined || !want.test(got)) return `thread ${tid} has ${name}: '${got ?? 'missing'}', want ${meaning}`;
    }
    if (tid === mainTid && field(status, 'NoNewPrivs') !== '1') return `thread ${tid} has NoNewPrivs: '${field(status, 'NoNewPrivs') ?? 'missing'}', want 1`;
  }
  return undefined;
}
