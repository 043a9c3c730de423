/*
 * A CPU latency request (PM QoS, /dev/cpu_dma_latency) held while a restore
 * runs: idle CPUs poll instead of sleeping, so that the restore's steps,
 * which wake each other across CPUs, wait microseconds for a sleeping CPU
 * rather than the tens to hundreds a virtual CPU takes to come back from
 * its halt.
 */
#ifndef CRIU_LAZY_COMMON_CPU_LATENCY_H
#define CRIU_LAZY_COMMON_CPU_LATENCY_H

#define CPU_LATENCY_DEV	"/dev/cpu_dma_latency"

/* Ask for no exit latency on every CPU until cpu_latency_release() or our
 * exit; the fd of the request, or -errno if the kernel does not let us (no
 * such device, not root): then nothing changes, and the caller carries on. */
int cpu_latency_hold(void);

/* Give the request back; @fd < 0 is nothing held. */
void cpu_latency_release(int fd);

#endif
