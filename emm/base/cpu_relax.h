/*
 * cpu_relax.h - the hint a spin-wait loop gives the CPU (x86 pause, Arm yield),
 * so a spinning thread yields pipeline resources to its sibling. Stateless.
 */
#ifndef EMM_CPU_RELAX_H
#define EMM_CPU_RELAX_H

static inline void
emm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#elif defined(__powerpc__) || defined(__powerpc64__)
    __asm__ __volatile__("or 27,27,27" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
