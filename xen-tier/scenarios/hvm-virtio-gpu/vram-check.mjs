// node vram-check.mjs FILE...: dom0's side of the hvm-virtio-gpu data check. Maps each FILE (the
// ivshmem VRAM resource file xvgpu serves blobs from, or xvgpu's memfd BOs reopened through
// /proc/PID/fd in hvm-retry), finds the one page where the HVM guest wrote its signature through its
// own virtio-gpu blob mapping, checks every word of the guest's pattern and the host's FILL pattern
// in the 8 pages before it (the blob's first half), then answers the guest through the same frames:
// ACK at signature page + 7 if all is intact, NACK otherwise.
// Layout and values: xen-tier/guest/hvm/virtgpu_client.c. Prints one JSON line.
import { native, O_RDWR } from '/xvgpu/dist/native/index.js';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { statSync } from 'node:fs';

const PAGE = 4096;
const SIGNATURE = Buffer.from('XVGPU-HVM-GUEST!');
const GUEST_PAGES = 7;
const HOST_PAGES = 8;
const HOST_VALUE = 0xc0de5eed;
const ACK_VALUE = 0xacce55ed;
const NACK_VALUE = 0xbad0bad0;
const guestWord = (i) => (0x6a000000 ^ Math.imul(i, 2654435761)) >>> 0;

const files = process.argv.slice(2);
const { PROT_READ, PROT_WRITE, MAP_SHARED } = native.mmapConstants;
const maps = files.map((path) => {
  const size = statSync(path).size;
  const fd = native.open(path, O_RDWR);
  const buf = size > 0 ? native.mmap(fd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0) : null;
  return { path, size, fd, buf, bytes: buf && new Uint8Array(buf), words: buf && new Uint32Array(buf) };
});

const found = [];
for (const m of maps) {
  for (let off = 0; m.bytes && off + PAGE * (GUEST_PAGES + 1) <= m.size; off += PAGE) {
    if (SIGNATURE.every((b, i) => m.bytes[off + i] === b)) found.push({ m, off });
  }
}
const result = { files: files.length, bytes: maps.reduce((n, m) => n + m.size, 0), signatures_found: found.length, file: null, at: null, guest_words_checked: 0, guest_mismatches: null, host_words_checked: 0, host_mismatches: null, answer: null };
if (found.length === 1) {
  const { m: { path, words }, off: at } = found[0];
  result.file = path;
  result.at = `0x${at.toString(16)}`;
  let bad = 0;
  const first = at / 4;
  for (let i = 4; i < (GUEST_PAGES * PAGE) / 4; i++) bad += words[first + i] !== guestWord(i) ? 1 : 0;
  result.guest_words_checked = (GUEST_PAGES * PAGE) / 4 - 4;
  result.guest_mismatches = bad;
  if (at >= HOST_PAGES * PAGE) {
    let hbad = 0;
    const hfirst = (at - HOST_PAGES * PAGE) / 4;
    for (let i = 0; i < (HOST_PAGES * PAGE) / 4; i++) hbad += words[hfirst + i] !== HOST_VALUE ? 1 : 0;
    result.host_words_checked = (HOST_PAGES * PAGE) / 4;
    result.host_mismatches = hbad;
  }
  const intact = bad === 0 && result.host_mismatches === 0;
  words[(at + GUEST_PAGES * PAGE) / 4] = intact ? ACK_VALUE : NACK_VALUE;
  result.answer = intact ? 'ack' : 'nack';
}
for (const m of maps) {
  if (m.buf) native.munmap(m.buf);
  native.close(m.fd);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exitCode = result.answer === 'ack' ? 0 : 1;
