/*
 * LD_PRELOAD shim: make this process see a CPU without AVX-512 and AVX-VNNI,
 * so XNNPACK, numpy and OpenCV pick the AVX2 kernels an AVX2-only machine runs
 * (issue 23's AMD EPYC). Built and used by app/lab/isa.py.
 *
 * How: arch_prctl(ARCH_SET_CPUID, 0) makes every CPUID instruction fault
 * (Linux "cpuid_fault", Intel since Ivy Bridge, AMD Zen 4+, also under
 * Firecracker/KVM). The SIGSEGV handler runs the real CPUID with faulting
 * briefly off, clears the feature bits below and steps over the instruction.
 * Any other SIGSEGV goes to the handler the program installed (sigaction and
 * signal are wrapped so nobody replaces ours). The setting is per thread,
 * inherited by threads and children, and reset by exec (the preload sets it
 * again in the new program).
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction program_handler; /* what the program asked for */
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static int set_cpuid(int enabled) {
    return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled);
}

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

/* Leaf 7: every AVX-512 flavour, AMX, and the VEX-encoded VNNI/IFMA. */
#define BIT(n) (1u << (n))
static const uint32_t LEAF7_0_EBX = BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) |
                                    BIT(28) | BIT(30) | BIT(31);
static const uint32_t LEAF7_0_ECX = BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14);
static const uint32_t LEAF7_0_EDX = BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) |
                                    BIT(24) | BIT(25);
static const uint32_t LEAF7_1_EAX = BIT(4) | BIT(5) | BIT(21) | BIT(23);
static const uint32_t LEAF7_1_EDX = BIT(4) | BIT(5) | BIT(8) | BIT(10) | BIT(19); /* 19: AVX10 */

static void masked_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    set_cpuid(1);
    cpuid(leaf, sub, r);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~LEAF7_0_EBX;
        r[2] &= ~LEAF7_0_ECX;
        r[3] &= ~LEAF7_0_EDX;
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~LEAF7_1_EAX;
        r[3] &= ~LEAF7_1_EDX;
    } else if (leaf == 0xd && sub == 0) {
        r[0] &= ~(BIT(5) | BIT(6) | BIT(7) | BIT(17) | BIT(18)); /* ZMM, AMX state */
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *regs = uc->uc_mcontext.gregs;
    /* a faulting CPUID is a general-protection fault (SI_KERNEL); only then is the
       instruction pointer known to point at readable code */
    const unsigned char *ip = (const unsigned char *)regs[REG_RIP];
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t r[4];
        masked_cpuid((uint32_t)regs[REG_RAX], (uint32_t)regs[REG_RCX], r);
        regs[REG_RAX] = r[0];
        regs[REG_RBX] = r[1];
        regs[REG_RCX] = r[2];
        regs[REG_RDX] = r[3];
        regs[REG_RIP] += 2;
        return;
    }
    if ((program_handler.sa_flags & SA_SIGINFO) && program_handler.sa_sigaction) {
        program_handler.sa_sigaction(sig, info, context);
        return;
    }
    if (!(program_handler.sa_flags & SA_SIGINFO) && program_handler.sa_handler != SIG_DFL
            && program_handler.sa_handler != SIG_IGN) {
        program_handler.sa_handler(sig);
        return;
    }
    /* a real crash and nobody else handles it: the default action, by returning to the
       faulting instruction with our handler gone (the kernel's own SIGSEGV, core and all) */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction)
        real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV)
        return real_sigaction(sig, act, old);
    struct sigaction before = program_handler; /* act and old may be the same struct */
    if (act)
        program_handler = *act;
    if (old)
        *old = before;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
    if (sig != SIGSEGV) {
        sighandler_t (*real_signal)(int, sighandler_t) = dlsym(RTLD_NEXT, "signal");
        return real_signal(sig, handler);
    }
    sighandler_t before = program_handler.sa_handler;
    memset(&program_handler, 0, sizeof program_handler);
    program_handler.sa_handler = handler;
    return before;
}

__attribute__((constructor)) static void start(void) {
    real_sigaction = dlsym(RTLD_NEXT, "sigaction");
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_segv;
    /* SA_ONSTACK: a program's alternate stack (faulthandler's) still serves overflows */
    ours.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    if (real_sigaction(SIGSEGV, &ours, &program_handler) != 0 || set_cpuid(0) != 0) {
        fprintf(stderr, "avx2_only: this kernel or CPU cannot fault CPUID (no cpuid_fault)\n");
        _exit(3);
    }
}
