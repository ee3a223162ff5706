/*
 * The xvgpu fault / revoke protocol (docs/fault-revoke-protocol.md) as a Promela model, checked
 * exhaustively by spin in test/model/spin.test.ts (how to run it by hand: model/README.md).
 *
 * Configuration: 2 vCPUs x 2 BAR pages of one blob (one registered range, one interval notifier)
 * x NI host invalidations (default 2), in one answer mode (-DMODE=RETRY or -DMODE=EMULATE). A
 * guest instruction makes one ioreq, or (vCPU 0) two on the same page, as a 16-byte move Xen
 * splits into two 8-byte ioreqs. With -DDEATH the back-end may die at any point.
 *
 * What each process stands for, and the code it follows:
 *   Vcpu     src/platform/sim/cpu.ts SimCpu.access/ioreq/waitForAnswer (Xen's ioreq_send and
 *            wait_for_io), SimP2mMemory.translate (the vCPU's TLB over the p2m), SimCpu.online.
 *   Ipi      SimP2mMemory.beforeAccess: the flush IPI, taken asynchronously (a running vCPU takes
 *            it at some later instruction boundary, as hardware does), then acknowledged.
 *   Backend  the back-end's event loop (one JS thread): src/ioreq/server.ts
 *            IoreqServer.service/complete, src/bar/manager.ts BarManager.handle/buildRequest/
 *            finish (fault-around run, D5 forward progress) around the MAP of
 *            src/platform/sim/kernel-helper.ts SimKernelHelper.mapLoop / kernel-helper/range.c
 *            xh_map (read_begin, lookup, lock, read_retry, install, the emulated access, unlock),
 *            and reading helper events. MAP is one blocking call, as the Linux platform's ioctl.
 *   Host     src/platform/sim/mm.ts SimMm.invalidate (mmu_notifier start/end, the notifier
 *            sequence) around the invalidate callback SimKernelHelper.invalidate /
 *            range.c xh_invalidate: lock, set_seq, clear the range's p2m entries
 *            (revokePages / revoke_pages), flush (src/platform/sim/xen.ts SimXen.flushTlbs: bump
 *            the epoch, wait for every running vCPU's acknowledgement), unlock, queue an event.
 *            After the callback returns the host frees the old frame (the page gets a new frame).
 *   Death    the back-end dies: its fd is released after every ioctl in flight has returned
 *            (SimKernelHelper.close / range.c xh_unregister_all: revoke everything, flush).
 *
 * Properties (each can fail: the MUT_* mutations, listed in model/README.md, break one each):
 *   - safety: an access (by a vCPU through its TLB or the p2m, or by the helper's emulation)
 *     reaches only the current frame of a page: never one whose invalidation has returned
 *     (assert in ACCESS);
 *   - no ioreq slot moves to a state Xen would reject (asserts in Vcpu's ioreq_send step and in ANSWER);
 *   - bounded retries: an instruction is answered `retry` at most K times (D5);
 *   - after the back-end died, no p2m entry is mapped (asserts in Death, in the locked section's install and
 *     in Vcpu once released);
 *   - liveness (ltl `live`, checked with weak fairness): every fault completes unless the
 *     back-end died, and every invalidation returns.
 */

#define RETRY 1
#define EMULATE 0
#ifndef MODE
#define MODE RETRY
#endif
/* flush_tlbs, free_frames and the Backend are written out for 2 vCPUs and 2 pages */
#define NV 2
#define NP 2
#ifndef NI
#define NI 2
#endif
/* BarPolicy.retryLimit: the K-th retry in a row on one page is the last (DEFAULT_POLICY has 4). */
#ifndef K
#define K 2
#endif

/* Slot states: src/xen/abi/ioreq.ts (STATE_IORESP_RETRY is the proposed extension). */
#define S_NONE 0
#define S_READY 1
#define S_INPROCESS 2
#define S_RESP_READY 3
#define S_RESP_RETRY 4

/* Run states: src/platform/sim/machine.ts (RUN_RUNNING / RUN_BLOCKED; 0 = offline). */
#define OFFLINE 0
#define RUNNING 1
#define BLOCKED 2

/* Frames are tracked relative to the host: a reference to a page's frame is CUR while the frame
 * backs the page, FREED once an invalidation of the page has returned (the host frees it then). */
#define NOFRAME 0
#define CUR 1
#define FREED 2

/* --- Xen: p2m, TLB flush protocol, ioreq slots ----------------------------------------------- */
byte p2m[NP];            /* the entry's frame, NOFRAME if none (SimXen.install/clear) */
byte tlb[NV * NP];       /* per vCPU and page: the cached translation's frame, NOFRAME if none */
/* The flush epoch (CTL_FLUSH_EPOCH) relative to each vCPU: a flush sets both flags of every vCPU. */
bool unseen[NV];         /* SimP2mMemory.seenFlush < epoch: the vCPU has a flush to take */
bool unacked[NV];        /* ackedEpochIndex(v) < epoch: the flusher still waits for this vCPU */
byte rstate[NV];            /* runStateIndex(v) */
byte slot[NV];           /* the vCPU's ioreq slot state */
byte req_page[NV];       /* the slot's addr (which page) */
byte req_part[NV];       /* which ioreq of its instruction this is (Xen's emulator knows) */
bool faulting[NV];       /* an instruction of vCPU v has faulted and has not completed */

/* --- the kernel helper and the notifier core ------------------------------------------------- */
byte mm_seq = 2;         /* mm->invalidate_seq: even idle, odd while an invalidation is in flight */
bool invalidating;       /* an invalidation is between start and end */
byte sub_seq = 1;        /* the range's interval notifier sequence (set_seq stores cur_seq) */
bool lock;               /* ctx->lock (the JS thread in the simulation) */
byte lk[NP];             /* the frames a MAP in flight looked up (lookup_pfns' pfns[]) */

/* --- the back-end ---------------------------------------------------------------------------- */
byte streak_page[NV];    /* BarManager.streakGfn (NP = none) */
byte streak[NV];         /* BarManager.streak */
byte inflight;           /* requests taken whose handling has not finished (ioctls in flight) */
bool dying;              /* the back-end process is dying: it takes no new request */
bool released;           /* its fd is released: range unregistered, every entry revoked */
/* Helper events (their cur_seq). The callback only queues one and never waits for user space
 * (invariant 3); BarManager.onHelperEvent only keeps metrics and its view of what is mapped. */
chan evq = [NI] of { byte };

/* An access reaches frame f: never one whose invalidation has returned. */
#define ACCESS(f) assert((f) == CUR)

/* Xen's checks on an answer (wait_for_io): only from INPROCESS; STATE_IORESP_RETRY only from a
 * server with the capability, and only for the first ioreq of an instruction (a restart would
 * repeat the parts Xen has already completed). */
#define ANSWER(v, st) \
  assert(slot[v] == S_INPROCESS); \
  assert((st) != S_RESP_RETRY || (MODE == RETRY && req_part[v] == 0)); \
  slot[v] = st

/* SimXen.flushTlbs: every TLB must drop its entries; wait until each running vCPU acknowledged
 * (a vCPU that is blocked or offline holds no live translation: it flushes before it runs). */
inline flush_tlbs() {
  unseen[0] = 1; unseen[1] = 1; unacked[0] = 1; unacked[1] = 1;
#ifndef MUT_NO_ACK_WAIT
  (rstate[0] != RUNNING || !unacked[0]);
  (rstate[1] != RUNNING || !unacked[1]);
#endif
}

/* Drops vCPU v's TLB and acknowledges the current flush epoch. */
inline take_flush(v) {
  tlb[v * NP] = NOFRAME;
  tlb[v * NP + 1] = NOFRAME;
  unseen[v] = 0;
  unacked[v] = 0;
}

/* The host frees the frames of the pages in `mask`: every reference to them is now FREED. */
inline free_frames(mask) {
  if
  :: mask & 1 ->
       if :: p2m[0] == CUR -> p2m[0] = FREED :: else fi;
       if :: lk[0] == CUR -> lk[0] = FREED :: else fi;
       if :: tlb[0] == CUR -> tlb[0] = FREED :: else fi;
       if :: tlb[NP] == CUR -> tlb[NP] = FREED :: else fi
  :: else
  fi;
  if
  :: mask & 2 ->
       if :: p2m[1] == CUR -> p2m[1] = FREED :: else fi;
       if :: lk[1] == CUR -> lk[1] = FREED :: else fi;
       if :: tlb[1] == CUR -> tlb[1] = FREED :: else fi;
       if :: tlb[NP + 1] == CUR -> tlb[NP + 1] = FREED :: else fi
  :: else
  fi
}

/* revoke_pages + flush, with the lock held: clears the entries of the pages in `mask`. */
inline revoke(mask, revoked) {
  revoked = 0;
  if :: (mask & 1) && p2m[0] != 0 -> p2m[0] = 0; revoked++ :: else fi;
  if :: (mask & 2) && p2m[1] != 0 -> p2m[1] = 0; revoked++ :: else fi;
  if :: revoked > 0 -> flush_tlbs() :: else fi
}

proctype Vcpu(byte v) {
  byte p, parts, part, retries, ans;

  /* SimCpu.online: a vCPU coming online holds no translation and is up to date with the flush
   * epoch (issue 9: it acknowledges the epoch, or a flush in flight would wait for it forever). */
  atomic {
    rstate[v] = RUNNING;
#ifdef MUT_ONLINE_NO_ACK
    unseen[v] = 0;
#else
    unseen[v] = 0; unacked[v] = 0;
#endif
  }
  do
  :: atomic {
       released ->
       /* The back-end is gone and the p2m empty: from here on every access of this vCPU
        * faults and waits forever (the domain is torn down). Nothing is left to reach. */
       if :: unseen[v] -> take_flush(v) :: else fi;
       assert(tlb[v * NP] == NOFRAME && tlb[v * NP + 1] == NOFRAME && p2m[0] == NOFRAME && p2m[1] == NOFRAME);
       goto end_halted
     }
  :: atomic {
       !released && !dying ->
       /* The next instruction: a page, and (vCPU 0 only, to bound the state space) one ioreq or
        * two when Xen has to emulate it. */
       if :: p = 0 :: p = 1 fi;
              if :: v == 0 -> parts = 2 :: parts = 1 fi;
exec:  /* translate (the TLB, else a walk of the p2m that fills the TLB) and access */
       if
       :: tlb[v * NP + p] != NOFRAME -> ACCESS(tlb[v * NP + p]); goto next
       :: tlb[v * NP + p] == NOFRAME && p2m[p] != NOFRAME -> tlb[v * NP + p] = p2m[p]; ACCESS(p2m[p]); goto next
       :: else -> faulting[v] = 1
       fi
     }
     /* The page is not mapped: Xen sends the instruction's ioreqs one after another. */
     do
     :: atomic {
          assert(slot[v] == S_NONE);          /* ioreq_send: "device model set bad IO state" */
          req_page[v] = p; req_part[v] = part;
          rstate[v] = BLOCKED;
          slot[v] = S_READY                    /* published last, then the event channel */
        }
        /* wait_for_io: blocked until the slot is answered (or the back-end is gone for good). */
        atomic {
          if
          :: slot[v] == S_RESP_READY || slot[v] == S_RESP_RETRY ->
               ans = slot[v]; slot[v] = S_NONE; rstate[v] = RUNNING; req_page[v] = 0; req_part[v] = 0;
               /* a blocked vCPU flushes before it runs again */
               if :: unseen[v] -> take_flush(v) :: else fi;
               if
               :: ans == S_RESP_RETRY ->
                    retries++;
                    assert(retries <= K);          /* D5: bounded retries per instruction */
                    ans = 0; part = 0;
                    goto exec                       /* re-execute: hits the mapping, or faults again */
               :: else ->
                    ans = 0; part++;
                    if :: part == parts -> goto next :: else fi
               fi
          :: released -> goto end_halted
          fi
        }
     od;
next:
     atomic { faulting[v] = 0; p = 0; parts = 0; part = 0; retries = 0 }
  od;
end_halted:
  skip
}

/* The flush IPI: a running vCPU takes a pending flush at some later instruction boundary. */
proctype Ipi(byte v) {
end:
  do
  :: atomic { rstate[v] == RUNNING && unseen[v] -> take_flush(v) }
  od
}

/* Backend phases: waiting for work, MAP waiting in read_begin to start over, MAP about to lock. */
#define IDLE 0
#define REREAD 1
#define LOCKED 2

/* mmu_interval_read_begin returns at once unless an invalidation of the range is in flight. */
#define READ_BEGIN_OK (!(invalidating && sub_seq == mm_seq))

/* read_begin, then lookup_pfns (follow_pte / fixup_user_fault, no helper lock): the run's frames.
 * Nothing can change the range between the two without changing its sequence, so one step. */
inline read_begin_lookup() {
  seq = sub_seq;
  if :: runmask & 1 -> lk[0] = CUR :: else fi;
  if :: runmask & 2 -> lk[1] = CUR :: else fi
}

/* IoreqServer.service (READY -> INPROCESS), BarManager.handle and buildRequest: the answer mode
 * (D4, D5 forced emulation) and the fault-around run holding the page (one page, or the aligned
 * block of both), then the MAP's read_begin and lookup. */
inline take(v) {
  slot[v] = S_INPROCESS; inflight = 1; p = req_page[v];
#ifdef MUT_NO_FALLBACK
  forced = 0;
#else
  forced = (MODE == RETRY && streak_page[v] == p && streak[v] >= K);
#endif
  emulate = (MODE == EMULATE || forced);
  if :: runmask = (1 << p) :: runmask = 3 fi;
  read_begin_lookup();
  phase = LOCKED
}

/* The MAP's locked section (lock; read_retry; install; the emulated access; unlock), then in the
 * same JS turn BarManager.finish and IoreqServer.complete. Nothing else can take the lock in
 * between, so it is one step. */
inline locked_section(v) {
#ifndef MUT_NO_RETRY_CHECK
  if
  :: sub_seq != seq -> phase = REREAD           /* mmu_interval_read_retry: unlock, start over */
  :: else ->
#endif
  /* install: the entries not present yet */
  if :: (runmask & 1) && p2m[0] == NOFRAME -> assert(!released); p2m[0] = lk[0]; installed++ :: else fi;
  if :: (runmask & 2) && p2m[1] == NOFRAME -> assert(!released); p2m[1] = lk[1]; installed++ :: else fi;
  /* emulate(): the access on the frame looked up, under the lock (D4) */
  if :: emulate -> ACCESS(lk[p]) :: else fi;
  /* BarManager.finish: the forward-progress streak, the answer */
  if
  :: emulate ->
#ifdef MUT_RETRY_CONT
       streak[v] = 0;                   /* reset after any emulation: the next ioreq may get retry */
#else
       if :: !forced -> streak[v] = 0 :: else fi;  /* forced emulation holds until another page */
#endif
       ANSWER(v, S_RESP_READY)
  :: else ->
       if
       :: streak_page[v] == p -> streak[v]++
       :: else -> streak_page[v] = p; streak[v] = 1
       fi;
       ANSWER(v, S_RESP_RETRY)
  fi;
  inflight = 0; phase = IDLE;
  lk[0] = NOFRAME; lk[1] = NOFRAME; seq = 0; runmask = 0; p = 0; installed = 0; emulate = 0; forced = 0
#ifndef MUT_NO_RETRY_CHECK
  fi
#endif
}

/* The back-end's event loop (one JS thread): serve a vCPU's request, or read a helper event
 * (BarManager.onHelperEvent). MAP is one blocking call, as the Linux platform's ioctl. A dying
 * back-end takes nothing new. */
proctype Backend() {
  byte v, p, runmask, seq, installed, phase;
  bool emulate, forced;
end:
  do
  :: atomic { phase == IDLE && !dying && slot[0] == S_READY && READ_BEGIN_OK -> v = 0; take(0) }
  :: atomic { phase == IDLE && !dying && slot[1] == S_READY && READ_BEGIN_OK -> v = 1; take(1) }
  :: atomic { phase == REREAD && READ_BEGIN_OK -> read_begin_lookup(); phase = LOCKED }
  :: atomic { phase == LOCKED && !lock && v == 0 -> locked_section(0) }
  :: atomic { phase == LOCKED && !lock && v == 1 -> locked_section(1) }
  :: atomic { phase == IDLE && !dying && len(evq) > 0 -> evq?_ }
  od
}

/* An invalidation of the pages in `mask` (TTM moves them): invalidate_range_start, the callback,
 * the host freeing the old frames, invalidate_range_end. While the callback waits for flush
 * acknowledgements the step blocks and everything else runs. */
proctype Host() {
  byte i, mask, revoked, cur;

  for (i : 1 .. NI) {
    if :: dying -> break :: else fi;               /* the back-end is dying: enough is in flight */
    atomic {
      !lock;                                       /* the callback's mutex_lock (blockable) */
      if :: mask = 1 :: mask = 2 :: mask = 3 fi;
      mm_seq++; invalidating = 1; cur = mm_seq;    /* start: the sequence goes odd */
      if
      :: !released ->                              /* xh_invalidate / SimKernelHelper.invalidate */
           lock = 1;
           sub_seq = cur;                          /* mmu_interval_set_seq */
#ifndef MUT_REVOKE_LATE
           revoke(mask, revoked);
#endif
           lock = 0;
           evq!cur                                 /* queue the event; return true */
      :: else                                      /* range unregistered: no callback */
      fi;
#ifdef MUT_REVOKE_LATE
    }
    atomic {
#endif
      free_frames(mask);                           /* the host frees the old frames */
#ifdef MUT_REVOKE_LATE
    }
    /* the entries are removed only after the callback returned (as a back-end would from the event) */
    atomic { !lock -> lock = 1; revoke(mask, revoked); lock = 0 }
    atomic {
#endif
      mm_seq++; invalidating = 0;                  /* end: even again, read_begin waiters go */
      cur = 0; revoked = 0; mask = 0
    }
  }
}

/* The back-end may die at any time: its fd is released once no ioctl is in flight (an ioctl
 * holds a file reference), then xh_unregister_all / SimKernelHelper.close revoke everything. */
proctype Death() {
  byte revoked;
  if
  :: skip
  :: dying = 1;
#ifndef MUT_RELEASE_NO_WAIT
     (inflight == 0);
#endif
     atomic {
       !lock && !invalidating -> lock = 1;         /* destroy_range under ctx->lock */
       revoke(3, revoked);
       lock = 0;
       released = 1;                              /* mmu_interval_notifier_remove */
       assert(p2m[0] == NOFRAME && p2m[1] == NOFRAME);
       revoked = 0
     }
  fi
}

init {
  byte v;
  atomic {
    streak_page[0] = NP; streak_page[1] = NP;
    for (v : 0 .. NV - 1) {
      run Vcpu(v); run Ipi(v)
    }
    run Backend(); run Host();
#ifdef DEATH
    run Death()
#endif
  }
}

/* Every fault completes unless the back-end died; every invalidation returns. */
ltl live {
  [] (faulting[0] -> <> (!faulting[0] || dying)) &&
  [] (faulting[1] -> <> (!faulting[1] || dying)) &&
  [] (invalidating -> <> !invalidating)
}
