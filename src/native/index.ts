/**
 * The only module that loads the native addon (native/src, built by `npm install` through npm's
 * bundled node-gyp). Everything else imports the typed surface from here.
 *
 * Errors from syscalls are Error objects with `code` (errno name), `errno` and `syscall`; bad
 * arguments are TypeError / RangeError. Nothing here aborts the process.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An error from a failed syscall. */
export interface SyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export interface RecvResult {
  data: Buffer;
  fds: number[];
  truncated: boolean;
}

export interface IoctlFixup {
  offset: number;
  buffer: ArrayBufferView;
}

export interface WaiterStats {
  wakeups: number;
  deliveries: number;
  batched: number;
  running: boolean;
}

/**
 * One native thread sleeping on fds (epoll, edge-triggered: drain each fd when told) or on futex
 * words (futex_waitv), never both. Ready tokens reach `callback` in batches on the JS thread.
 */
export interface Waiter {
  addFd(fd: number, token: number): void;
  /** Wakes when words[index] changes; signal it with futexWake (Atomics.notify does not reach it). */
  addFutex(words: Int32Array, index: number, token: number): void;
  start(opts?: { cpu?: number }): void;
  close(): void;
  ref(): void;
  unref(): void;
  stats(): WaiterStats;
}

export interface NativeAddon {
  open(path: string, flags: number): number;
  close(fd: number): void;
  /**
   * `arg`: a TypedArray passed by pointer (in/out), a number passed by value, or nothing.
   * `fixups`: for structs that embed user pointers, the address of each `buffer` is written into
   * `arg` at `offset` (u64) for the duration of the call.
   */
  ioctl(fd: number, request: number, arg?: ArrayBufferView | number | bigint, fixups?: IoctlFixup[]): number;
  /** An ArrayBuffer over the mapping; munmap() detaches it (views read as zero-length) first. */
  mmap(fd: number, length: number, prot: number, flags: number, offset: number): ArrayBuffer;
  munmap(buffer: ArrayBuffer): void;
  /** The user address of a live mmap() buffer (never of an ordinary ArrayBuffer). */
  addressOf(buffer: ArrayBuffer): number;
  mmapConstants: { PROT_READ: number; PROT_WRITE: number; MAP_SHARED: number; MAP_PRIVATE: number; MADV_DONTNEED: number };
  /** madvise(2) on page-aligned [offset, offset+length) of a live mmap() buffer (range-checked). */
  madvise(buffer: ArrayBuffer, offset: number, length: number, advice: number): void;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /**
   * Keeps the frames of 1-256 whole pages of a live mmap() buffer allocated until the returned fd
   * is closed (a pipe holding vmsplice page references), even after they leave their file.
   */
  pinPages(buffer: ArrayBuffer, offset: number, length: number): number;
  fallocConstants: { FALLOC_FL_KEEP_SIZE: number; FALLOC_FL_PUNCH_HOLE: number };
  eventfd(initval?: number, flags?: number): number;
  eventfdWrite(fd: number, value?: number | bigint): void;
  /** The counter, or 0 when a non-blocking eventfd is empty. */
  eventfdRead(fd: number): number;
  memfdCreate(name: string, flags?: number): number;
  /** Pins the calling thread. */
  pinThread(cpus: number[]): void;
  getAffinity(): number[];
  /** prctl(PR_SET_NO_NEW_PRIVS, 1) on the calling thread (threads and children created later inherit it). */
  setNoNewPrivs(): void;
  /** AF_UNIX SOCK_SEQPACKET pair. */
  socketpair(): [number, number];
  sendFds(sock: number, data: ArrayBufferView, fds: number[]): number;
  recvFds(sock: number, maxBytes: number): RecvResult;
  futexWake(words: Int32Array, index: number, count?: number): number;
  /** Blocks the calling thread; only for worker threads. */
  futexWait(words: Int32Array, index: number, expected: number, timeoutMs?: number): 'ok' | 'not-equal' | 'timed-out';
  Waiter: new (callback: (tokens: number[]) => void) => Waiter;
  /** Native thread <-> native thread round trips (ns per round); blocks the caller. */
  floorThreads(kind: 'futex' | 'eventfd' | 'epoll', rounds: number, cpuA: number, cpuB: number): Float64Array;
  /** Native thread → TSFN → `fn` on the JS thread → futex wake back (ns per round). */
  floorTsfn(rounds: number, cpu: number, fn: () => void): Promise<Float64Array>;
}

function addonPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'build', 'Release', 'xvgpu_native.node');
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error('xvgpu: the native addon is not built (build/Release/xvgpu_native.node); run `npm install`');
    dir = up;
  }
}

/** Node 20 cannot `import` a .node file; createRequire loads it (once per thread: it is context-aware). */
export const native: NativeAddon = createRequire(import.meta.url)(addonPath()) as NativeAddon;

/** open(2) flags used by the project (Linux values). */
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const EFD_NONBLOCK = 0o4000;

export function isSyscallError(e: unknown, code?: string): e is SyscallError {
  return e instanceof Error && typeof (e as Partial<SyscallError>).syscall === 'string' && (code === undefined || (e as SyscallError).code === code);
}
