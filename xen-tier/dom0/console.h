/* SPDX-License-Identifier: GPL-2.0 */
/* What the dom0 test programs of the Xen tier share (included by each; compiled into each binary). */
#ifndef XT_DOM0_CONSOLE_H
#define XT_DOM0_CONSOLE_H

#include <stdio.h>
#include <string.h>
#include <time.h>

// Waits (bounded) for a line starting with PREFIX in the guest's console log; copies it to LINE.
static inline int wait_console(const char *log, const char *prefix, char *line, size_t len, int seconds) {
  for (int i = 0; i <= seconds * 5; i++) { /* at least one look, also for 0 s */
    FILE *f = fopen(log, "r");
    if (f) {
      while (fgets(line, (int)len, f))
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
          fclose(f);
          line[strcspn(line, "\r\n")] = 0;
          return 0;
        }
      fclose(f);
    }
    struct timespec ts = {0, 200 * 1000 * 1000};
    if (i < seconds * 5) nanosleep(&ts, NULL);
  }
  snprintf(line, len, "no '%s' within %ds", prefix, seconds);
  return -1;
}

#endif
