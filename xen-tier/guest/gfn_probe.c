// gfn_probe GPA SECONDS: a PVH guest program of the helper-xen scenario. Reads the 32-bit word at
// guest-physical address GPA through /dev/mem (STRICT_DEVMEM lets it map a non-RAM range) every
// 20 ms for SECONDS, and prints each new value ("XT-PROBE: %08x"): dom0 sees when a p2m entry the
// kernel helper added or removed took effect in the guest. Without an entry Xen's null I/O handler
// answers the read (no ioreq server claims the address): 0xffffffff.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const struct timespec tick = { .tv_nsec = 20 * 1000 * 1000 };
	unsigned long long gpa;
	volatile uint32_t *word;
	uint32_t last = 0;
	long i, rounds;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: gfn_probe GPA SECONDS\n");
		return 2;
	}
	gpa = strtoull(argv[1], NULL, 0);
	rounds = strtol(argv[2], NULL, 0) * 50;
	fd = open("/dev/mem", O_RDONLY | O_SYNC);
	if (fd < 0) {
		perror("XT-PROBE: /dev/mem");
		return 1;
	}
	word = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)(gpa & ~4095ULL));
	if (word == MAP_FAILED) {
		perror("XT-PROBE: mmap");
		return 1;
	}
	word += (gpa & 4095) / 4;
	for (i = 0; i < rounds; i++) {
		uint32_t v = *word;

		if (i == 0 || v != last) {
			printf("XT-PROBE: %08x\n", v);
			fflush(stdout);
			last = v;
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}
