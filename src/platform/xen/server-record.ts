/**
 * Which ioreq server xvgpu created for which domain, kept in a small file until the server is
 * destroyed. An ioreq server belongs to the guest, not to the process that created it: after a
 * `kill -9` Xen keeps it, enabled, claiming our ranges (common/ioreq.c destroys servers only on
 * request or when the domain dies). A restarted xvgpu reads the record and destroys exactly that
 * server (dom0 is its emulator, so Xen permits it), never another emulator's (QEMU's, say): Xen
 * offers no way to tell whose a server is. The record names the domain instance by its handle
 * (xl's UUID), so a record left by a guest whose domid was reused is discarded, not acted on.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ServerRecord {
  readonly domid: number;
  /** The domain instance (xen_domain_handle_t, hex). */
  readonly handle: string;
  readonly server: number;
  /** The xvgpu process that created it. */
  readonly pid: number;
}

export function recordPath(dir: string, domid: number): string {
  return join(dir, `xen-dom${domid}.ioreq-server.json`);
}

/** The record for `domid`, or undefined when there is none; a malformed one throws (fail closed). */
export function readServerRecord(dir: string, domid: number): ServerRecord | undefined {
  let text: string;
  try {
    text = readFileSync(recordPath(dir, domid), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const r = JSON.parse(text) as Partial<ServerRecord>;
  if (r.domid !== domid || typeof r.handle !== 'string' || !Number.isInteger(r.server) || !Number.isInteger(r.pid)) {
    throw new Error(`${recordPath(dir, domid)}: not an ioreq server record`);
  }
  return r as ServerRecord;
}

/** Written to a temporary name and renamed: a crash never leaves half a record. */
export function writeServerRecord(dir: string, r: ServerRecord): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = recordPath(dir, r.domid);
  writeFileSync(`${path}.tmp`, JSON.stringify(r), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function removeServerRecord(dir: string, domid: number): void {
  rmSync(recordPath(dir, domid), { force: true });
}

/** Whether process `pid` exists (signal 0: EPERM still means it exists). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
