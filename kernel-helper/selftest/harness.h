/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small test harness with the interface of the kernel's tools/testing/selftests/kselftest_harness.h
 * (which Debian does not ship): TEST, TEST_F, FIXTURE, FIXTURE_SETUP, FIXTURE_TEARDOWN,
 * ASSERT_* / EXPECT_* with an optional TH_LOG after them, TEST_HARNESS_MAIN, and KTAP output, one
 * "ok N name" / "not ok N name" line per case. Written for the xvgpu helper's selftest, not copied.
 *
 * Each case runs in a forked child with a timeout, so a crash, a hang or an oops that kills the
 * process fails that case and the next one runs. ASSERT_* ends the case, EXPECT_* marks it failed
 * and goes on. Differences from upstream: no variants, no SKIP (a case passes or fails), and a
 * fixture's teardown runs whenever its setup started (a teardown must cope with a partial setup).
 *
 * Options: -l lists the cases; -t NAME / -T NAME run only / leave out the case NAME; -f FIXTURE /
 * -F FIXTURE the same for a fixture ("global" for plain TESTs). Exit status 0 when all passed.
 */
#ifndef XVGPU_SELFTEST_HARNESS_H
#define XVGPU_SELFTEST_HARNESS_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 120 /* seconds per case */
#endif

struct __test_metadata {
	const char *fixture;
	const char *name;
	void (*fn)(struct __test_metadata *);
	int failed;   /* an EXPECT or ASSERT failed */
	int trigger;  /* the check just made failed: run the TH_LOG after it, then bail if it was an ASSERT */
	jmp_buf bail; /* an ASSERT jumps here (to the teardown) */
	struct __test_metadata *next;
};

static struct __test_metadata *__th_first, **__th_last = &__th_first;

static inline void __register_test(struct __test_metadata *t)
{
	*__th_last = t;
	__th_last = &t->next;
}

/* Log a line in the running case (KTAP diagnostic). */
#define TH_LOG(fmt, ...) fprintf(stdout, "# %s:%d:%s:" fmt "\n", __FILE__, __LINE__, _metadata->name, ##__VA_ARGS__)

#define TEST(test_name)                                                                          \
	static void test_name(struct __test_metadata *_metadata);                                \
	static void _wrapper_##test_name(struct __test_metadata *_metadata)                      \
	{                                                                                   \
		if (setjmp(_metadata->bail) == 0)                                           \
			test_name(_metadata);                                                    \
	}                                                                                   \
	static struct __test_metadata _##test_name##_object = { .fixture = "global", .name = #test_name, .fn = _wrapper_##test_name }; \
	static void __attribute__((constructor)) _register_##test_name(void)                    \
	{                                                                                   \
		__register_test(&_##test_name##_object);                                          \
	}                                                                                   \
	static void test_name(struct __test_metadata __attribute__((unused)) *_metadata)

#define FIXTURE_DATA(fixture) struct _fixture_##fixture##_data
#define FIXTURE(fixture) FIXTURE_DATA(fixture)
#define FIXTURE_SETUP(fixture) \
	static void fixture##_setup(struct __test_metadata __attribute__((unused)) *_metadata, FIXTURE_DATA(fixture) *self)
#define FIXTURE_TEARDOWN(fixture) \
	static void fixture##_teardown(struct __test_metadata __attribute__((unused)) *_metadata, FIXTURE_DATA(fixture) *self)

#define TEST_F(fixture_name, test_name)                                                                       \
	static void fixture_name##_##test_name(struct __test_metadata *_metadata, FIXTURE_DATA(fixture_name) *self); \
	static void _wrapper_##fixture_name##_##test_name(struct __test_metadata *_metadata)                   \
	{                                                                                           \
		FIXTURE_DATA(fixture_name) self;                                                         \
		memset(&self, 0, sizeof(self));                                                     \
		if (setjmp(_metadata->bail) == 0) {                                                 \
			fixture_name##_setup(_metadata, &self);                                          \
			if (!_metadata->failed)                                                     \
				fixture_name##_##test_name(_metadata, &self);                                 \
		}                                                                                   \
		fixture_name##_teardown(_metadata, &self);                                               \
	}                                                                                           \
	static struct __test_metadata _##fixture_name##_##test_name##_object = { .fixture = #fixture_name, .name = #test_name, \
								       .fn = _wrapper_##fixture_name##_##test_name }; \
	static void __attribute__((constructor)) _register_##fixture_name##_##test_name(void)                 \
	{                                                                                           \
		__register_test(&_##fixture_name##_##test_name##_object);                                     \
	}                                                                                           \
	static void fixture_name##_##test_name(struct __test_metadata __attribute__((unused)) *_metadata,      \
				     FIXTURE_DATA(fixture_name) __attribute__((unused)) *self)

/* After a failed check (trigger set): the TH_LOG, if any, is the body of this loop; then bail. */
static inline int __th_bail(int is_assert, struct __test_metadata *t)
{
	if (is_assert)
		longjmp(t->bail, 1);
	return 0;
}

#define __TH_HANDLER(is_assert) for (; _metadata->trigger; _metadata->trigger = __th_bail(is_assert, _metadata))

#define __TH_CMP(expected, seen, op, is_assert)                                                          \
	do {                                                                                             \
		__typeof__(expected) __exp = (expected);                                                  \
		__typeof__(seen) __seen = (seen);                                                         \
		if (!(__exp op __seen)) {                                                                 \
			fprintf(stdout, "# %s:%d:%s:Expected %s (%lld) %s %s (%lld)\n", __FILE__, __LINE__, \
				_metadata->name, #expected, (long long)__exp, #op, #seen, (long long)__seen); \
			_metadata->failed = 1;                                                            \
			_metadata->trigger = 1;                                                           \
		}                                                                                         \
	} while (0);                                                                                      \
	__TH_HANDLER(is_assert)

#define __TH_BOOL(cond, want, is_assert)                                                        \
	do {                                                                                    \
		if (!!(cond) != (want)) {                                                        \
			fprintf(stdout, "# %s:%d:%s:Expected %s to be %s\n", __FILE__, __LINE__,  \
				_metadata->name, #cond, (want) ? "true" : "false");              \
			_metadata->failed = 1;                                                   \
			_metadata->trigger = 1;                                                  \
		}                                                                                \
	} while (0);                                                                             \
	__TH_HANDLER(is_assert)

#define ASSERT_EQ(expected, seen) __TH_CMP(expected, seen, ==, 1)
#define ASSERT_NE(expected, seen) __TH_CMP(expected, seen, !=, 1)
#define ASSERT_LT(expected, seen) __TH_CMP(expected, seen, <, 1)
#define ASSERT_LE(expected, seen) __TH_CMP(expected, seen, <=, 1)
#define ASSERT_GT(expected, seen) __TH_CMP(expected, seen, >, 1)
#define ASSERT_GE(expected, seen) __TH_CMP(expected, seen, >=, 1)
#define ASSERT_TRUE(cond) __TH_BOOL(cond, 1, 1)
#define ASSERT_FALSE(cond) __TH_BOOL(cond, 0, 1)
#define EXPECT_EQ(expected, seen) __TH_CMP(expected, seen, ==, 0)
#define EXPECT_NE(expected, seen) __TH_CMP(expected, seen, !=, 0)
#define EXPECT_LT(expected, seen) __TH_CMP(expected, seen, <, 0)
#define EXPECT_LE(expected, seen) __TH_CMP(expected, seen, <=, 0)
#define EXPECT_GT(expected, seen) __TH_CMP(expected, seen, >, 0)
#define EXPECT_GE(expected, seen) __TH_CMP(expected, seen, >=, 0)
#define EXPECT_TRUE(cond) __TH_BOOL(cond, 1, 0)
#define EXPECT_FALSE(cond) __TH_BOOL(cond, 0, 0)

static inline void __th_on_alarm(int sig)
{
	(void)sig;
}

/*
 * Runs one case in a child; 0 = passed. The parent's wait is bounded too: a child stuck in the
 * kernel (an oops that left a lock held) cannot be killed, but it must not stop the other cases.
 */
static inline int __th_run_one(struct __test_metadata *t)
{
	struct sigaction sa = { .sa_handler = __th_on_alarm }; /* no SA_RESTART: waitpid returns EINTR */
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		alarm(TEST_TIMEOUT_DEFAULT);
		t->fn(t);
		fflush(stdout);
		_exit(t->failed ? 1 : 0);
	}
	sigaction(SIGALRM, &sa, NULL);
	alarm(TEST_TIMEOUT_DEFAULT + 10);
	if (waitpid(pid, &status, 0) != pid) {
		kill(pid, SIGKILL);
		printf("# %s.%s: did not finish (stuck in the kernel?)\n", t->fixture, t->name);
		return 1;
	}
	alarm(0);
	if (WIFSIGNALED(status)) {
		printf("# %s.%s: died of signal %d%s\n", t->fixture, t->name, WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
		return 1;
	}
	return WEXITSTATUS(status) != 0;
}

struct __th_filter {
	const char *only_test, *skip_test, *only_fixture, *skip_fixture;
};

static inline int __th_selected(const struct __test_metadata *t, const struct __th_filter *f)
{
	return (!f->only_test || !strcmp(t->name, f->only_test)) && (!f->skip_test || strcmp(t->name, f->skip_test)) &&
	       (!f->only_fixture || !strcmp(t->fixture, f->only_fixture)) &&
	       (!f->skip_fixture || strcmp(t->fixture, f->skip_fixture));
}

static inline int test_harness_run(int argc, char **argv)
{
	struct __th_filter f = { 0 };
	struct __test_metadata *t;
	int opt, list = 0, total = 0, n = 0, pass = 0;

	while ((opt = getopt(argc, argv, "lt:T:f:F:")) != -1) {
		switch (opt) {
		case 'l': list = 1; break;
		case 't': f.only_test = optarg; break;
		case 'T': f.skip_test = optarg; break;
		case 'f': f.only_fixture = optarg; break;
		case 'F': f.skip_fixture = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-l] [-t test] [-T test] [-f fixture] [-F fixture]\n", argv[0]);
			return 2;
		}
	}
	for (t = __th_first; t; t = t->next)
		if (__th_selected(t, &f)) {
			total++;
			if (list)
				printf("%s.%s\n", t->fixture, t->name);
		}
	if (list)
		return 0;
	printf("TAP version 13\n1..%d\n", total);
	for (t = __th_first; t; t = t->next) {
		int failed;

		if (!__th_selected(t, &f))
			continue;
		printf("#  RUN           %s.%s ...\n", t->fixture, t->name);
		failed = __th_run_one(t);
		pass += !failed;
		printf("# %s %s.%s\n", failed ? "     FAIL     " : "           OK ", t->fixture, t->name);
		printf("%sok %d %s.%s\n", failed ? "not " : "", ++n, t->fixture, t->name);
		fflush(stdout);
	}
	printf("# %s: %d / %d tests passed.\n", pass == total ? "PASSED" : "FAILED", pass, total);
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n", pass, total - pass);
	return pass == total && total > 0 ? 0 : 1;
}

#define TEST_HARNESS_MAIN                          \
	int main(int argc, char **argv)            \
	{                                          \
		return test_harness_run(argc, argv); \
	}

#endif
