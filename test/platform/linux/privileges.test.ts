/**
 * Dropping root (`--run-as`): the account is resolved before anything opens, the drop runs in the
 * one safe order and stops at the first failure with one line, and the check afterwards refuses any
 * thread that kept an id, a group, a capability, or lacks no_new_privs. The last test drops a real
 * child process (CI runs as root) and reads back what the kernel says it holds.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  PrivilegeDropError, dropPrivileges, privilegeLeft, resolveRunAs, systemAccounts, type CredentialOps, type RunAs,
} from '../../../src/platform/linux/privileges.js';
import { distFile } from '../../../src/util/dist-path.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nxvgpu:x:990:989::/var/lib/xvgpu:/usr/sbin/nologin\n';
const GROUP = 'root:x:0:\nnogroup:x:65534:\nxvgpu:x:989:\nvideo:x:44:xvgpu\n';
const accounts = systemAccounts((p) => (p === '/etc/passwd' ? PASSWD : GROUP));
const NOBODY: RunAs = { spec: 'nobody', uid: 65534, gid: 65534 };

describe('--run-as USER[:GROUP]', () => {
  it('resolves names, numbers and the primary group', () => {
    expect(resolveRunAs('xvgpu', accounts)).toEqual({ spec: 'xvgpu', uid: 990, gid: 989 });
    expect(resolveRunAs('xvgpu:video', accounts)).toEqual({ spec: 'xvgpu:video', uid: 990, gid: 44 });
    expect(resolveRunAs('65534:65534', accounts)).toEqual({ spec: '65534:65534', uid: 65534, gid: 65534 });
    expect(resolveRunAs('nobody:nogroup', accounts)).toEqual({ spec: 'nobody:nogroup', uid: 65534, gid: 65534 });
  });

  it.each([
    ['root', /is root \(uid 0, gid 0\)/],
    ['nobody:root', /is root \(uid 65534, gid 0\)/],
    ['0:65534', /is root/],
    ['ghost', /no user 'ghost' in \/etc\/passwd/],
    ['nobody:ghosts', /no group 'ghosts' in \/etc\/group/],
    ['4242', /a numeric user needs its group/],
    ['a:b:c', /wants USER\[:GROUP\]/],
    ['nobody:', /wants USER\[:GROUP\]/],
    ['', /wants USER\[:GROUP\]/],
    ['4294967295:1', /no user '4294967295'/],
  ])('refuses %j with one line', (spec, msg) => {
    let err: unknown;
    try {
      resolveRunAs(spec, accounts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PrivilegeDropError);
    expect((err as Error).message).toMatch(msg);
    expect((err as Error).message).not.toContain('\n');
  });
});

const MAIN = '4000';
function status(o: { uid?: string; gid?: string; groups?: string; capPrm?: string; capEff?: string; capAmb?: string; nnp?: string } = {}): string {
  return [
    'Name:\tnode',
    `Uid:\t${o.uid ?? '65534\t65534\t65534\t65534'}`,
    `Gid:\t${o.gid ?? '65534\t65534\t65534\t65534'}`,
    `Groups:\t${o.groups ?? ''}`,
    `CapInh:\t0000000000000000`,
    `CapPrm:\t${o.capPrm ?? '0000000000000000'}`,
    `CapEff:\t${o.capEff ?? '0000000000000000'}`,
    'CapBnd:\t000001ffffffffff',
    `CapAmb:\t${o.capAmb ?? '0000000000000000'}`,
    `NoNewPrivs:\t${o.nnp ?? '1'}`,
  ].join('\n');
}

/** Records each credential call; `failing` makes that call throw; `statuses` is what /proc shows after. */
function fakeOps(o: { euid?: number; failing?: string; regains?: boolean; statuses?: Map<string, string> } = {}): CredentialOps & { calls: string[] } {
  const calls: string[] = [];
  const statuses = o.statuses ?? new Map([[String(process.pid), status()], ['4001', status({ nnp: '0' })]]);
  const call = (name: string): void => {
    calls.push(name);
    if (name === o.failing) throw Object.assign(new Error(`EPERM, Operation not permitted\n(detail)`), { code: 'EPERM' });
  };
  return {
    calls,
    geteuid: () => o.euid ?? 0,
    setgroups: (g) => { call(`setgroups [${g.join(',')}]`); },
    setgid: (g) => { call(`setgid ${g}`); },
    setuid: (u) => {
      if (u === 0) {
        calls.push('setuid 0');
        if (o.regains !== true) throw new Error('EPERM');
        return;
      }
      call(`setuid ${u}`);
    },
    setNoNewPrivs: () => { call('no_new_privs'); },
    threadIds: () => {
      call('list threads');
      return [...statuses.keys(), '4999']; // 4999 exits before its status is read
    },
    threadStatus: (tid) => {
      call(`read status ${tid}`);
      return statuses.get(tid);
    },
  };
}

describe('dropPrivileges', () => {
  const ORDER = ['list threads', 'setgroups []', 'setgid 65534', 'setuid 65534', 'no_new_privs', 'setuid 0', `read status ${process.pid}`, 'read status 4001', 'read status 4999'];

  it('lists the threads, drops groups, then gid, then uid, sets no_new_privs, checks it cannot get root back, reads each thread', () => {
    const ops = fakeOps();
    dropPrivileges(NOBODY, ops);
    expect(ops.calls).toEqual(ORDER);
  });

  it.each([...ORDER.slice(0, 5), `read status ${process.pid}`])('a failing %s stops there with one line naming it', (failing) => {
    const ops = fakeOps({ failing });
    expect(() => { dropPrivileges(NOBODY, ops); }).toThrow(PrivilegeDropError);
    expect(ops.calls.at(-1)).toBe(failing);
    expect(ops.calls).toEqual(ORDER.slice(0, ORDER.indexOf(failing) + 1));
    try {
      dropPrivileges(NOBODY, fakeOps({ failing }));
    } catch (e) {
      expect((e as Error).message).toMatch(/^dropping privileges: .* failed: EPERM, Operation not permitted$/);
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('refuses to start unless root, before touching anything', () => {
    const ops = fakeOps({ euid: 1000 });
    expect(() => { dropPrivileges(NOBODY, ops); }).toThrow(/--run-as nobody needs xvgpu started as root \(euid is 1000\)/);
    expect(ops.calls).toEqual([]);
  });

  it('fails when setuid(0) still works afterwards', () => {
    expect(() => { dropPrivileges(NOBODY, fakeOps({ regains: true })); }).toThrow(/setuid\(0\) still succeeds/);
  });

  it('fails when a thread kept a privilege', () => {
    const statuses = new Map([[String(process.pid), status()], ['4001', status({ capEff: '0000000000200000' })]]);
    expect(() => { dropPrivileges(NOBODY, fakeOps({ statuses })); }).toThrow(/thread 4001 has CapEff: '0000000000200000', want no effective capabilities/);
  });
});

describe('privilegeLeft: every thread, every field', () => {
  const ok = (s: string): Map<string, string> => new Map([[MAIN, status()], ['4001', s]]);

  it('accepts a fully dropped process', () => {
    expect(privilegeLeft(NOBODY, ok(status()), MAIN)).toBeUndefined();
    // Only the main thread (the one that would execve) must show NoNewPrivs.
    expect(privilegeLeft(NOBODY, ok(status({ nnp: '0' })), MAIN)).toBeUndefined();
  });

  it.each([
    ['a saved uid of 0', { uid: '65534\t65534\t0\t65534' }, /Uid: '65534\t65534\t0\t65534'/],
    ['a real gid of 0', { gid: '0\t65534\t65534\t65534' }, /Gid:/],
    ['a supplementary group', { groups: '44' }, /Groups: '44', want no supplementary groups/],
    ['a permitted capability', { capPrm: '0000000000000001' }, /CapPrm/],
    ['an effective capability', { capEff: '000001ffffffffff' }, /CapEff/],
    ['an ambient capability', { capAmb: '0000000000200000' }, /CapAmb/],
  ])('refuses a thread with %s', (_what, fields, msg) => {
    expect(privilegeLeft(NOBODY, ok(status(fields)), MAIN)).toMatch(msg);
    expect(privilegeLeft(NOBODY, new Map([[MAIN, status(fields)]]), MAIN)).toMatch(msg);
  });

  it('refuses a main thread without no_new_privs, a missing field, and a missing main thread', () => {
    expect(privilegeLeft(NOBODY, new Map([[MAIN, status({ nnp: '0' })]]), MAIN)).toMatch(/thread 4000 has NoNewPrivs: '0', want 1/);
    expect(privilegeLeft(NOBODY, new Map([[MAIN, status().replace(/^CapAmb.*$/m, '')]]), MAIN)).toMatch(/CapAmb: 'missing'/);
    expect(privilegeLeft(NOBODY, new Map([['4001', status()]]), MAIN)).toMatch(/no status for the main thread 4000/);
  });
});

describe('dropPrivileges on this machine (a real child process, started as root)', () => {
  it('leaves the child as nobody with no capabilities, unable to open a root-only file or get root back', () => {
    expect(process.geteuid?.(), 'this test drops root: run it as root (CI does)').toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'xvgpu-privs-'));
    const secret = join(dir, 'root-only');
    writeFileSync(secret, 'x');
    chmodSync(secret, 0o600);
    const script = `
      import { readFileSync, openSync } from 'node:fs';
      const { dropPrivileges } = await import(${JSON.stringify(distFile('platform/linux/privileges.js'))});
      const held = openSync(${JSON.stringify(secret)}, 'r'); // opened before the drop: stays usable
      dropPrivileges({ spec: 'nobody', uid: 65534, gid: 65534 });
      let reopen = 'opened';
      try { openSync(${JSON.stringify(secret)}, 'r'); } catch (e) { reopen = e.code; }
      const st = readFileSync('/proc/self/status', 'utf8');
      const f = (k) => st.split('\\n').find((l) => l.startsWith(k + ':'))?.slice(k.length + 1).trim();
      console.log(JSON.stringify({ uid: f('Uid'), capEff: f('CapEff'), capPrm: f('CapPrm'), nnp: f('NoNewPrivs'), groups: f('Groups'), reopen,
        heldReads: readFileSync(held, 'utf8') }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as Record<string, string>;
    expect(got).toEqual({ uid: '65534\t65534\t65534\t65534', capEff: '0000000000000000', capPrm: '0000000000000000', nnp: '1', groups: '', reopen: 'EACCES', heldReads: 'x' });
  });
});
