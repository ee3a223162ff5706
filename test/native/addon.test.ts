import { closeSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { EFD_NONBLOCK, isSyscallError, native, type Waiter } from '../../src/native/index.js';

const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
const ADDON = createRequire(import.meta.url).resolve('../../build/Release/xvgpu_native.node');
const waiters: Waiter[] = [];
afterEach(() => { for (const w of waiters.splice(0)) w.close(); });

function waiterCollecting(): { w: Waiter; got: number[][]; next: () => Promise<number[]> } {
  const got: number[][] = [];
  let wake: (() => void) | undefined;
  const w = new native.Waiter((tokens) => { got.push(tokens); wake?.(); });
  waiters.push(w);
  const next = async (): Promise<number[]> => {
    const deadline = Date.now() + 5000;
    while (got.length === 0) {
      if (Date.now() > deadline) throw new Error('waiter delivered nothing');
      await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    }
    return got.shift() ?? [];
  };
  return { w, got, next };
}

describe('mmap / munmap', () => {
  it('maps a memfd shared, aliases across mappings, and detaches views on munmap', () => {
    const fd = native.memfdCreate('xvgpu-test');
    ftruncateSync(fd, 8192);
    const a = native.mmap(fd, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
    const b = native.mmap(fd, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 4096);
    expect(native.addressOf(a) % 4096).toBe(0);
    expect(() => native.addressOf(new ArrayBuffer(8))).toThrow(/not a live buffer from mmap/);
    const va = new Uint32Array(a);
    const vb = new Uint32Array(b);
    va[1024] = 0xdeadbeef;
    expect(vb[0]).toBe(0xdeadbeef);
    native.munmap(a);
    expect(a.byteLength).toBe(0);
    expect(va.length).toBe(0);
    expect(va[1024]).toBeUndefined(); // a stale view reads as empty, never as freed memory
    expect(() => { native.munmap(a); }).toThrow(/already unmapped/);
    expect(vb[0]).toBe(0xdeadbeef);
    native.munmap(b);
    closeSync(fd);
  });

  it('refuses buffers that did not come from mmap and bad arguments', () => {
    expect(() => { native.munmap(new ArrayBuffer(16)); }).toThrow(/not a buffer from mmap/);
    expect(() => native.mmap(0, 0, PROT_READ, MAP_SHARED, 0)).toThrow(RangeError);
    try {
      native.mmap(-1, 4096, PROT_READ, MAP_SHARED, 0);
      expect.unreachable();
    } catch (e) {
      expect(isSyscallError(e, 'EBADF')).toBe(true);
    }
  });
});

describe('syscalls', () => {
  it('reports errno names and the syscall', () => {
    try {
      native.open('/nonexistent/xvgpu', 0);
      expect.unreachable();
    } catch (e) {
      expect(isSyscallError(e, 'ENOENT')).toBe(true);
      expect((e as Error).message).toMatch(/^open\(\/nonexistent\/xvgpu\): ENOENT/);
    }
    const fd = native.memfdCreate('ioctl');
    expect(() => native.ioctl(fd, 0x1234, new Uint8Array(8))).toThrow(/ioctl: ENOTTY/);
    expect(() => native.ioctl(-1, 0x1234)).toThrow(/EBADF/);
    native.close(fd);
    expect(() => { native.close(fd); }).toThrow(/EBADF/);
  });

  it('turns bad JS arguments into TypeError / RangeError', () => {
    expect(() => native.open(5 as unknown as string, 0)).toThrow(TypeError);
    expect(() => native.ioctl(1.5, 0)).toThrow(RangeError);
    expect(() => native.futexWake(new Uint32Array(4) as unknown as Int32Array, 0)).toThrow(TypeError);
    expect(() => native.futexWake(new Int32Array(4), 4)).toThrow(RangeError);
    expect(() => { native.pinThread([-1]); }).toThrow(RangeError);
    expect(() => native.sendFds(0, new Uint8Array(0), [])).toThrow(RangeError);
  });

  it('eventfd counts writes and a non-blocking read of an empty one returns 0', () => {
    const fd = native.eventfd(0, EFD_NONBLOCK);
    expect(native.eventfdRead(fd)).toBe(0);
    native.eventfdWrite(fd, 3);
    native.eventfdWrite(fd);
    expect(native.eventfdRead(fd)).toBe(4);
    native.close(fd);
  });

  it('passes descriptors over a Unix socket (SCM_RIGHTS)', () => {
    const [a, b] = native.socketpair();
    const mem = native.memfdCreate('passed');
    writeSync(mem, 'hello from the helper', 0);
    native.sendFds(a, Buffer.from('bind'), [mem]);
    const got = native.recvFds(b, 64);
    expect(got.data.toString()).toBe('bind');
    expect(got.truncated).toBe(false);
    expect(got.fds).toHaveLength(1);
    const fd = got.fds[0] ?? -1;
    expect(fd).not.toBe(mem);
    const buf = Buffer.alloc(21);
    readSync(fd, buf, 0, 21, 0);
    expect(buf.toString()).toBe('hello from the helper');
    for (const f of [a, b, mem, fd]) native.close(f);
  });

  it('pins the calling thread and reads the affinity back', () => {
    const before = native.getAffinity();
    expect(before.length).toBeGreaterThan(0);
    native.pinThread([before[0] ?? 0]);
    expect(native.getAffinity()).toEqual([before[0]]);
    native.pinThread(before);
    expect(native.getAffinity()).toEqual(before);
  });

  it('futexWait sees value mismatches and timeouts', () => {
    const w = new Int32Array(new SharedArrayBuffer(8));
    expect(native.futexWait(w, 0, 1, 10)).toBe('not-equal');
    expect(native.futexWait(w, 0, 0, 5)).toBe('timed-out');
    expect(native.futexWake(w, 0)).toBe(0);
  });
});

describe('Waiter', () => {
  it('delivers ready fds (epoll) with their tokens', async () => {
    const { w, next } = waiterCollecting();
    const e1 = native.eventfd(0, EFD_NONBLOCK);
    const e2 = native.eventfd(0, EFD_NONBLOCK);
    w.addFd(e1, 11);
    w.addFd(e2, 22);
    w.start();
    native.eventfdWrite(e2);
    expect(await next()).toEqual([22]);
    native.eventfdRead(e2);
    native.eventfdWrite(e1);
    expect(await next()).toEqual([11]);
    expect(w.stats().deliveries).toBeGreaterThanOrEqual(2);
    w.close();
    expect(w.stats().running).toBe(false);
    native.close(e1);
    native.close(e2);
  });

  it('wakes on futex words changed and woken from another thread, batching bursts', async () => {
    const { w, got, next } = waiterCollecting();
    const words = new Int32Array(new SharedArrayBuffer(16));
    w.addFutex(words, 0, 1);
    w.addFutex(words, 2, 3);
    w.start();
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const native = require(workerData.addon);
       const w = workerData.words;
       for (let i = 0; i < 200; i++) { Atomics.add(w, i % 2 === 0 ? 0 : 2, 1); native.futexWake(w, i % 2 === 0 ? 0 : 2); }`,
      { eval: true, workerData: { words, addon: ADDON } },
    );
    await new Promise((r) => worker.on('exit', r));
    const first = await next();
    expect(first.length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 50));
    const all = new Set([...first, ...got.flat()]);
    expect([...all].sort()).toEqual([1, 3]);
    // 200 signals arrived in far fewer JS calls.
    expect(w.stats().deliveries).toBeLessThan(200);
  });

  it('refuses mixed watch kinds, double starts and late additions', () => {
    const { w } = waiterCollecting();
    w.addFd(0, 1);
    expect(() => { w.addFutex(new Int32Array(new SharedArrayBuffer(4)), 0, 2); }).toThrow(/either fds or futex/);
    w.start();
    expect(() => { w.start(); }).toThrow(/already started/);
    expect(() => { w.addFd(1, 2); }).toThrow(/before start/);
    expect(() => { new native.Waiter(undefined as unknown as () => void); }).toThrow(TypeError);
  });

  it('is stopped and joined when a worker that started one exits without closing it', async () => {
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const native = require(workerData.addon);
       const fd = native.eventfd(0, 0);
       const w = new native.Waiter(() => {});
       w.addFd(fd, 1);
       w.start();
       w.unref();
       setTimeout(() => process.exit(0), 20);`,
      { eval: true, workerData: { addon: ADDON } },
    );
    const code = await new Promise((r) => worker.on('exit', r));
    expect(code).toBe(0);
  });
});

describe('floor', () => {
  it('measures native round trips by each mechanism', () => {
    for (const kind of ['futex', 'eventfd', 'epoll'] as const) {
      const s = native.floorThreads(kind, 300, -1, -1);
      expect(s).toHaveLength(300);
      expect(Math.min(...s)).toBeGreaterThan(0);
    }
    expect(() => native.floorThreads('pipe' as 'futex', 10, -1, -1)).toThrow(RangeError);
  });

  it('measures the native → TSFN → JS → native path', async () => {
    let calls = 0;
    const s = await native.floorTsfn(100, -1, () => { calls++; });
    expect(s).toHaveLength(100);
    expect(calls).toBe(600); // 500 warm-up rounds + 100 measured
  });
});
