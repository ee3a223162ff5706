/*
 * segv-report.so: LD_PRELOAD into a dom0 process (xvgpu) to learn where it dies of SIGSEGV, SIGBUS,
 * SIGILL or SIGFPE when no debugger or core can leave dom0. Node resets every handler at start-up
 * and then installs its WebAssembly trap handler for SIGSEGV, so this library interposes
 * sigaction() for those signals: its own handler stays installed, and the program's handler is
 * kept and called first. If that handler returns without asking for the default action (a
 * WebAssembly trap it recovered from), nothing is printed. Otherwise this writes to stderr: the
 * signal, si_code, the fault address, the faulting thread's name, RIP/RSP/RBP and a backtrace with
 * each frame as module+offset (symbolise on the host with the same binaries: `addr2line -e MODULE
 * OFFSET`, or gdb), then restores the default action and returns, so the process dies as it would
 * have (status 128+signal). Only async-signal-safe calls in the handler, except backtrace(), whose
 * first call (which loads libgcc_s) is made at load time.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

static char altstack[64 * 1024];
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
/* What the program asked for, per watched signal; and whether its handler asked for SIG_DFL. */
static struct sigaction wanted[NSIG];
static volatile sig_atomic_t default_requested;

static int watched(int sig) { return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE; }

static void find_real(void) {
  if (!real_sigaction) real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  find_real();
  if (!watched(sig)) return real_sigaction(sig, act, old);
  if (old) *old = wanted[sig];
  if (act) {
    wanted[sig] = *act;
    if (!(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL) default_requested = 1;
  }
  return 0;
}

/* Runs the program's own handler; returns 1 if it recovered (returned without asking for SIG_DFL). */
static int program_recovered(int sig, siginfo_t *si, void *ctx) {
  struct sigaction *a = &wanted[sig];
  default_requested = 0;
  if (a->sa_flags & SA_SIGINFO) {
    if (!a->sa_sigaction) return 0;
    a->sa_sigaction(sig, si, ctx);
  } else {
    if (a->sa_handler == SIG_DFL || a->sa_handler == SIG_IGN) return 0;
    a->sa_handler(sig);
  }
  return !default_requested;
}

static void put(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static void put_hex(uintptr_t v) {
  char b[19] = "0x";
  int n = 2;
  for (int shift = 60; shift >= 0; shift -= 4) {
    int d = (v >> shift) & 0xf;
    if (d || n > 2 || shift == 0) b[n++] = "0123456789abcdef"[d];
  }
  b[n] = 0;
  put(b);
}

static void put_frame(uintptr_t pc) {
  Dl_info info;
  put("segv-report:   ");
  put_hex(pc);
  if (dladdr((void *)pc, &info) && info.dli_fname) {
    put(" ");
    put(info.dli_fname);
    put("+");
    put_hex(pc - (uintptr_t)info.dli_fbase);
    if (info.dli_sname) {
      put(" ");
      put(info.dli_sname);
      put("+");
      put_hex(pc - (uintptr_t)info.dli_saddr);
    }
  }
  put("\n");
}

static void report(int sig, siginfo_t *si, void *ctx) {
  if (program_recovered(sig, si, ctx)) return;
  ucontext_t *uc = ctx;
  char comm[32] = "?";
  int fd = open("/proc/thread-self/comm", O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, comm, sizeof comm - 1);
    comm[n > 0 ? n - 1 : 0] = 0;
    close(fd);
  }
  put("segv-report: signal ");
  put_hex((uintptr_t)sig);
  put(" code ");
  put_hex((uintptr_t)si->si_code);
  put(" addr ");
  put_hex((uintptr_t)si->si_addr);
  put(" thread ");
  put(comm);
  put("\nsegv-report: rip ");
  put_hex((uintptr_t)uc->uc_mcontext.gregs[REG_RIP]);
  put(" rsp ");
  put_hex((uintptr_t)uc->uc_mcontext.gregs[REG_RSP]);
  put(" rbp ");
  put_hex((uintptr_t)uc->uc_mcontext.gregs[REG_RBP]);
  put("\nsegv-report: faulting pc\n");
  put_frame((uintptr_t)uc->uc_mcontext.gregs[REG_RIP]);
  put("segv-report: backtrace\n");
  void *frames[64];
  int n = backtrace(frames, 64);
  for (int i = 0; i < n; i++) put_frame((uintptr_t)frames[i]);
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  real_sigaction(sig, &dfl, NULL);
}

__attribute__((constructor)) static void install(void) {
  void *warm[1];
  backtrace(warm, 1);
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
  sigaltstack(&ss, NULL);
  find_real();
  struct sigaction sa = {.sa_sigaction = report, .sa_flags = SA_SIGINFO | SA_ONSTACK};
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) real_sigaction(sigs[i], &sa, NULL);
}
