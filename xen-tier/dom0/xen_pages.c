// xen_pages: one JSON line with dom0's page count (tot_pages) and Xen's free pages, exact (xl's
// figures are MiB). Scenarios take it before and after a run to see every page come back.
#include <inttypes.h>
#include <stdio.h>
#include <xenctrl.h>

int main(void) {
  xc_interface *xch = xc_interface_open(NULL, NULL, 0);
  if (!xch) { perror("xc_interface_open"); return 1; }
  xc_domaininfo_t di;
  xc_physinfo_t pi = {0};
  if (xc_domain_getinfolist(xch, 0, 1, &di) != 1 || di.domain != 0 || xc_physinfo(xch, &pi) != 0) {
    perror("getdomaininfo/physinfo");
    return 1;
  }
  printf("{\"dom0_tot_pages\":%" PRIu64 ",\"xen_free_pages\":%" PRIu64 "}\n", (uint64_t)di.tot_pages, (uint64_t)pi.free_pages);
  xc_interface_close(xch);
  return 0;
}
