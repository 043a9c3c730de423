/*
 * Live FPU/SSE/AVX state across the checkpoint.  One asm block loads known
 * values into the vector registers (xmm0-15 for --isa sse, ymm0-15 for
 * avx, zmm0-31 and k0-7 for avx512), the x87 stack (8 values) and control
 * word, MXCSR, and r8-r10/r12-r15; then it announces readiness by
 * signalling itself (the READY_SIG handler writes the pidfile; the kernel
 * saves and restores all of that state around the handler) and spins on
 * `pause` until SIGTERM.  So the checkpoint is taken while the values live
 * only in registers.  After the loop every register is stored and compared.
 *
 * --threads N: N more threads do the same at once, each with values of its
 * own (vectors, x87, MXCSR and control word rounding, r8-r15): every thread
 * must get its own state back, not the leader's.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdtmtst.h"

struct regs {
	uint8_t vec[32][64];
	uint64_t k[8];
	uint8_t st[8][16];	/* 80-bit x87 values in 16-byte slots */
	uint64_t gpr[8];	/* r8..r15; r11 unused (syscall clobbers it) */
	uint32_t mxcsr;
	uint16_t fcw;
} __attribute__((aligned(64)));

struct state {
	struct regs in, out;
	uint32_t mxcsr_default;
	int32_t pid;
} __attribute__((aligned(64)));

#define MAX_THREADS 8
/* a real-time signal (queued: one per thread, none merged), the $40 above */
#define READY_SIG 40

static struct state s, ts[MAX_THREADS];
static long nr_threads;

#define OFF(f) "i" (offsetof(struct state, f))

/* operands common to every variant: %[s] = &s (rbx), %[flag] (rdx) */
#define LOAD_COMMON							\
	"fninit\n\t"							\
	"fldcw %c[ifcw](%[s])\n\t"					\
	"fldt 0*16+%c[ist](%[s])\n\t"					\
	"fldt 1*16+%c[ist](%[s])\n\t"					\
	"fldt 2*16+%c[ist](%[s])\n\t"					\
	"fldt 3*16+%c[ist](%[s])\n\t"					\
	"fldt 4*16+%c[ist](%[s])\n\t"					\
	"fldt 5*16+%c[ist](%[s])\n\t"					\
	"fldt 6*16+%c[ist](%[s])\n\t"					\
	"fldt 7*16+%c[ist](%[s])\n\t"					\
	"ldmxcsr %c[imx](%[s])\n\t"					\
	"mov 0*8+%c[igpr](%[s]), %%r8\n\t"				\
	"mov 1*8+%c[igpr](%[s]), %%r9\n\t"				\
	"mov 2*8+%c[igpr](%[s]), %%r10\n\t"				\
	"mov 4*8+%c[igpr](%[s]), %%r12\n\t"				\
	"mov 5*8+%c[igpr](%[s]), %%r13\n\t"				\
	"mov 6*8+%c[igpr](%[s]), %%r14\n\t"				\
	"mov 7*8+%c[igpr](%[s]), %%r15\n\t"				\
	/* kill(pid, READY_SIG): the handler writes the pidfile */	\
	"mov $62, %%eax\n\t"						\
	"mov %c[pid](%[s]), %%edi\n\t"					\
	"mov $40, %%esi\n\t"						\
	"syscall\n\t"							\
	"1:\n\t"							\
	"pause\n\t"							\
	"cmpl $0, (%[flag])\n\t"					\
	"je 1b\n\t"

#define STORE_COMMON							\
	"mov %%r8, 0*8+%c[ogpr](%[s])\n\t"				\
	"mov %%r9, 1*8+%c[ogpr](%[s])\n\t"				\
	"mov %%r10, 2*8+%c[ogpr](%[s])\n\t"				\
	"mov %%r12, 4*8+%c[ogpr](%[s])\n\t"				\
	"mov %%r13, 5*8+%c[ogpr](%[s])\n\t"				\
	"mov %%r14, 6*8+%c[ogpr](%[s])\n\t"				\
	"mov %%r15, 7*8+%c[ogpr](%[s])\n\t"				\
	"stmxcsr %c[omx](%[s])\n\t"					\
	"fnstcw %c[ofcw](%[s])\n\t"					\
	"fstpt 7*16+%c[ost](%[s])\n\t"					\
	"fstpt 6*16+%c[ost](%[s])\n\t"					\
	"fstpt 5*16+%c[ost](%[s])\n\t"					\
	"fstpt 4*16+%c[ost](%[s])\n\t"					\
	"fstpt 3*16+%c[ost](%[s])\n\t"					\
	"fstpt 2*16+%c[ost](%[s])\n\t"					\
	"fstpt 1*16+%c[ost](%[s])\n\t"					\
	"fstpt 0*16+%c[ost](%[s])\n\t"					\
	"fninit\n\t"							\
	"ldmxcsr %c[dmx](%[s])\n\t"

#define OPERANDS							\
	: [s] "b" (st), [flag] "d" (test_stop_flag()),			\
	  [iv] OFF(in.vec), [ov] OFF(out.vec),				\
	  [ik] OFF(in.k), [ok] OFF(out.k),				\
	  [ist] OFF(in.st), [ost] OFF(out.st),				\
	  [igpr] OFF(in.gpr), [ogpr] OFF(out.gpr),			\
	  [imx] OFF(in.mxcsr), [omx] OFF(out.mxcsr),			\
	  [ifcw] OFF(in.fcw), [ofcw] OFF(out.fcw),			\
	  [dmx] OFF(mxcsr_default), [pid] OFF(pid)

#define CLOBBERS_COMMON							\
	"memory", "cc", "rax", "rcx", "rdi", "rsi", "r8", "r9", "r10",	\
	"r11", "r12", "r13", "r14", "r15",				\
	"st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)"

#define CLOBBERS_XMM16							\
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",	\
	"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

#define X(op, n, reg) op " " #n "*64+%c[iv](%[s]), %%" reg #n "\n\t"
#define Y(op, n, reg) op " %%" reg #n ", " #n "*64+%c[ov](%[s])\n\t"
#define ALL16(M, op, reg)						\
	M(op, 0, reg) M(op, 1, reg) M(op, 2, reg) M(op, 3, reg)		\
	M(op, 4, reg) M(op, 5, reg) M(op, 6, reg) M(op, 7, reg)		\
	M(op, 8, reg) M(op, 9, reg) M(op, 10, reg) M(op, 11, reg)	\
	M(op, 12, reg) M(op, 13, reg) M(op, 14, reg) M(op, 15, reg)
#define HI16(M, op, reg)						\
	M(op, 16, reg) M(op, 17, reg) M(op, 18, reg) M(op, 19, reg)	\
	M(op, 20, reg) M(op, 21, reg) M(op, 22, reg) M(op, 23, reg)	\
	M(op, 24, reg) M(op, 25, reg) M(op, 26, reg) M(op, 27, reg)	\
	M(op, 28, reg) M(op, 29, reg) M(op, 30, reg) M(op, 31, reg)
#define K(op, n) op " " #n "*8+%c[ik](%[s]), %%k" #n "\n\t"
#define KS(op, n) op " %%k" #n ", " #n "*8+%c[ok](%[s])\n\t"
#define ALLK(M, op)							\
	M(op, 0) M(op, 1) M(op, 2) M(op, 3) M(op, 4) M(op, 5) M(op, 6) M(op, 7)

static void spin_sse(struct state *st)
{
	__asm__ volatile(ALL16(X, "movdqu", "xmm") LOAD_COMMON
			 ALL16(Y, "movdqu", "xmm") STORE_COMMON
			 : OPERANDS : CLOBBERS_COMMON, CLOBBERS_XMM16);
}

__attribute__((target("avx")))
static void spin_avx(struct state *st)
{
	__asm__ volatile(ALL16(X, "vmovdqu", "ymm") LOAD_COMMON
			 ALL16(Y, "vmovdqu", "ymm") STORE_COMMON "vzeroupper\n\t"
			 : OPERANDS : CLOBBERS_COMMON, CLOBBERS_XMM16);
}

__attribute__((target("avx512f,avx512bw")))
static void spin_avx512(struct state *st)
{
	__asm__ volatile(ALL16(X, "vmovdqu64", "zmm") HI16(X, "vmovdqu64", "zmm")
			 ALLK(K, "kmovq") LOAD_COMMON
			 ALL16(Y, "vmovdqu64", "zmm") HI16(Y, "vmovdqu64", "zmm")
			 ALLK(KS, "kmovq") STORE_COMMON "vzeroupper\n\t"
			 : OPERANDS : CLOBBERS_COMMON, CLOBBERS_XMM16,
			   "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
			   "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
			   "xmm28", "xmm29", "xmm30", "xmm31",
			   "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7");
}

static volatile sig_atomic_t ready;
static int nr_loaded;

/* Each thread's state is loaded: the last one writes the pidfile. */
static void on_ready(int sig)
{
	(void)sig;
	if (__atomic_add_fetch(&nr_loaded, 1, __ATOMIC_SEQ_CST) == nr_threads + 1) {
		test_daemon();
		ready = 1;
	}
}

static uint32_t mxcsr_mask(void)
{
	uint8_t area[512] __attribute__((aligned(64)));
	uint32_t mask;

	memset(area, 0, sizeof(area));
	__asm__ volatile("fxsave %0" : "=m" (area));
	memcpy(&mask, area + 28, 4);
	return mask ? mask : 0xffbf;
}

static void compare(const char *who, const struct state *st, const char *isa, int nvec,
		    size_t vlen, int nk)
{
	const struct state s = *st;
	int i;

	for (i = 0; i < nvec; i++)
		if (memcmp(s.in.vec[i], s.out.vec[i], vlen)) {
			size_t b = 0;

			while (s.in.vec[i][b] == s.out.vec[i][b])
				b++;
			fail("%s: %s register %d: byte %zu is %#x, expected %#x", who, isa, i, b,
			     s.out.vec[i][b], s.in.vec[i][b]);
		}
	for (i = 0; i < nk; i++)
		if (s.in.k[i] != s.out.k[i])
			fail("%s: opmask k%d is %#llx, expected %#llx", who, i,
			     (unsigned long long)s.out.k[i], (unsigned long long)s.in.k[i]);
	for (i = 0; i < 8; i++)
		if (memcmp(s.in.st[i], s.out.st[i], 10))
			fail("%s: x87 st slot %d (loaded %d-th) changed", who, 7 - i, i);
	for (i = 0; i < 8; i++)
		if (i != 3 && s.in.gpr[i] != s.out.gpr[i])
			fail("%s: r%d is %#llx, expected %#llx", who, 8 + i,
			     (unsigned long long)s.out.gpr[i], (unsigned long long)s.in.gpr[i]);
	if (s.in.mxcsr != s.out.mxcsr)
		fail("%s: MXCSR is %#x, expected %#x", who, s.out.mxcsr, s.in.mxcsr);
	if (s.in.fcw != s.out.fcw)
		fail("%s: x87 control word is %#x, expected %#x", who, s.out.fcw, s.in.fcw);
}

static const long double st_vals[8] = {
	1.0L / 3.0L, 3.14159265358979323846264338327950288L, -2.5e300L,
	1.0e-4000L, 12345678901234567890.0L, -0.0L, 7.0L / 9.0L, 42.125L,
};

/* The values of thread @t (0: the main thread), rounding modes apart. */
static void fill_state(struct state *st, int t)
{
	int i;

	for (i = 0; i < 32; i++)
		pattern_fill(st->in.vec[i], 64, 0x766563ULL + (uint64_t)i + 0x100ULL * t);
	for (i = 0; i < 8; i++) {
		long double v = st_vals[i] * (t + 1);

		st->in.k[i] = 0x6b00000000000000ULL | ((uint64_t)i << 40) |
			      (0x1234567ULL * (uint64_t)(i + 1 + t));
		memcpy(st->in.st[i], &v, 10);
		st->in.gpr[i] = (0x6770720000000000ULL + ((uint64_t)t << 32)) ^
				(0x1111111111ULL * (uint64_t)(i + 8));
	}
	/* main: DAZ, all exceptions masked, round toward zero, FTZ, sticky IE
	 * flag; the threads: the other rounding modes, in turn */
	st->in.mxcsr = (t ? 0x1f80 | (uint32_t)(t % 3) << 13 : 0xffc1) & mxcsr_mask();
	st->in.fcw = t ? 0x037f | (uint16_t)(t % 3) << 10 : 0x0e7f;
	st->mxcsr_default = 0x1f80;
	st->pid = getpid();
}

static const char *isa = "avx";

static void spin(struct state *st)
{
	if (!strcmp(isa, "sse"))
		spin_sse(st);
	else if (!strcmp(isa, "avx"))
		spin_avx(st);
	else
		spin_avx512(st);
}

static void *thread_spin(void *arg)
{
	spin(arg);
	return NULL;
}

int main(int argc, char **argv)
{
	const struct test_opt opts[] = {
		{ "isa", TEST_OPT_STR, &isa, 0, "sse | avx | avx512" },
		{ "threads", TEST_OPT_INT, &nr_threads, 0, "more threads with state of their own" },
		{ NULL, 0, NULL, 0, NULL },
	};
	pthread_t th[MAX_THREADS];
	const char *what;
	int nvec, nk, i;
	size_t vlen;
	struct sigaction sa;

	test_init(argc, argv, opts);
	__builtin_cpu_init();
	if (!strcmp(isa, "avx") && !__builtin_cpu_supports("avx"))
		fail("--isa avx: this CPU has no AVX");
	if (!strcmp(isa, "avx512") && !(__builtin_cpu_supports("avx512f") &&
					 __builtin_cpu_supports("avx512bw")))
		fail("--isa avx512: this CPU has no AVX-512F/BW");

	if (strcmp(isa, "sse") && strcmp(isa, "avx") && strcmp(isa, "avx512"))
		fail("unknown --isa '%s'", isa);
	if (nr_threads < 0 || nr_threads > MAX_THREADS)
		fail("--threads %ld: 0..%d", nr_threads, MAX_THREADS);
	fill_state(&s, 0);
	for (i = 0; i < nr_threads; i++)
		fill_state(&ts[i], i + 1);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_ready;
	sigemptyset(&sa.sa_mask);
	if (READY_SIG < SIGRTMIN || READY_SIG > SIGRTMAX)
		fail("signal %d is no real-time signal here", READY_SIG);
	if (sigaction(READY_SIG, &sa, NULL))
		fail("sigaction: %m");

	for (i = 0; i < nr_threads; i++)
		if (test_thread_create(&th[i], NULL, thread_spin, &ts[i]))
			fail("pthread_create failed");
	spin(&s);
	for (i = 0; i < nr_threads; i++)
		if (pthread_join(th[i], NULL))
			fail("pthread_join failed");
	if (!ready)
		fail("the READY_SIG handler never ran");

	what = !strcmp(isa, "sse") ? "xmm" : !strcmp(isa, "avx") ? "ymm" : "zmm";
	nvec = !strcmp(isa, "avx512") ? 32 : 16;
	vlen = !strcmp(isa, "sse") ? 16 : !strcmp(isa, "avx") ? 32 : 64;
	nk = !strcmp(isa, "avx512") ? 8 : 0;
	compare("the main thread", &s, what, nvec, vlen, nk);
	for (i = 0; i < nr_threads; i++) {
		char who[32];

		snprintf(who, sizeof(who), "thread %d", i + 1);
		compare(who, &ts[i], what, nvec, vlen, nk);
	}
	pass();
}
