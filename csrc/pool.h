/* A fork-join pool of worker threads for the native kernels, included by native.c.
 *
 * run_parts(fn, ctx, n0, n1, parts) splits [n0, n1) into `parts` contiguous ranges and calls
 * fn(ctx, r0, r1, part) on each, and returns when all are done (0, or the first nonzero a part
 * returned).  The calling thread and the workers claim parts in turn, so part k's result is
 * the same whichever thread ran it, and a thread the scheduler has taken off its CPU holds up
 * no part it has not begun: with one busy process beside it on a 2-vCPU VM, a step that gave
 * each thread its own part fixed took 5.5x its time (the strided net's inference at batch
 * 256: 12 ms against 2.2; all-conv's training at batch 8: 28 against 5.3), as every job
 * waited out the other process's time slice; PyTorch's took 2x.
 *
 * Why not Python threads: a Python thread pool handing a range to a sleeping worker took 150-230
 * us on a 2-vCPU VM (the futex wake, the GIL, the idle vCPU's wake-up), where the layers of a
 * small net take 100-500 us; a step of the ResNet on the 8x8 digits at batch 256 spent 1.5 of
 * its 6 ms waiting for its worker.  Here a worker spins (pause instructions) for SPIN_NS after
 * each part before it sleeps, so a hand-off within a step costs 1-2 us, yielding its core to
 * any thread that waits for it; after SPIN_NS idle it sleeps and costs no CPU (OpenBLAS's
 * workers spin 2^28 cycles, ~0.1 s, and GNU OpenMP's a similar time: those stole a core from
 * whatever ran next, see gpucnn/cpu_runtime.py).  The caller waits for the workers' parts the
 * same way: spinning without yielding, it held up the first passes after an idle pause (the
 * strided net's inference at batch 256, the suite's timing: 12 ms, against a median of 2),
 * most likely where the scheduler had woken the worker on the caller's CPU; yielding, the
 * longest took 5.5-6 ms, the median unchanged.
 *
 * A worker the scheduler wakes on the caller's CPU waits there, runnable, while the caller
 * runs the job's parts (the strided net's inference at batch 256, after each idle pause: in a
 * third to a half of its passes, at about twice the others' time, as /proc/<tid>/schedstat
 * showed).  So a caller that wakes sleeping workers first takes its own CPU out of their
 * affinity, and each puts its mask back once awake (wake_aside, step_back).  A spinning
 * worker that ends up on the caller's CPU is moved by the kernel's balancer within 5-20 ms.
 *
 * One job at a time: a caller that finds the pool busy (two Python threads in native kernels
 * at once) runs its parts itself, one after another.  After fork() the child starts with no
 * workers (pthread_atfork).  Without POSIX threads (_WIN32), every caller runs its parts
 * itself. */
#include <stdint.h>
#include <stdlib.h>

enum { POOL_MAX = 64 }; /* parts of one call at most */

typedef int (*part_fn)(void *ctx, int n0, int n1, int part);

/* Part `part` of `parts` of [n0, n1): fn on its range. */
static int run_part(part_fn fn, void *ctx, int n0, int n1, int part, int parts)
{
    return fn(ctx, n0 + (int)((long long)(n1 - n0) * part / parts),
              n0 + (int)((long long)(n1 - n0) * (part + 1) / parts), part);
}

static int run_serial(part_fn fn, void *ctx, int n0, int n1, int parts)
{
    int rc = 0;
    for (int p = 0; p < parts; p++) {
        const int r = run_part(fn, ctx, n0, n1, p, parts);
        rc = rc ? rc : r;
    }
    return rc;
}

#if defined(_WIN32) || !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L || defined(__STDC_NO_ATOMICS__)
static int run_parts(part_fn fn, void *ctx, int n0, int n1, int parts)
{
    return run_serial(fn, ctx, n0, n1, parts < 1 ? 1 : parts);
}
#else
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define SPIN_NS 200000L /* a layer's Python between two kernels takes 10-100 us */

enum { CLAIM_SHIFT = 8 }; /* pool.claim: the job's number above, its next unclaimed part below */

#if defined(__linux__) && defined(CPU_COUNT)
static int this_cpu(void) { return sched_getcpu(); }

/* The affinity a caller narrowed for a sleeping worker, for the worker to put back. */
typedef struct {
    cpu_set_t mine;
    int narrowed;
} affinity;

/* Thread t's affinity less CPU `cpu` where that leaves some (a keeps the mask to put back): a
 * wake-up does not put t on it. */
static void wake_aside(pthread_t t, int cpu, affinity *a)
{
    a->narrowed = 0;
    if (cpu < 0 || cpu >= CPU_SETSIZE || pthread_getaffinity_np(t, sizeof a->mine, &a->mine) ||
        !CPU_ISSET(cpu, &a->mine) || CPU_COUNT(&a->mine) < 2)
        return;
    cpu_set_t off = a->mine;
    CPU_CLR(cpu, &off);
    a->narrowed = pthread_setaffinity_np(t, sizeof off, &off) == 0;
}

/* This thread's mask as it was before wake_aside: it stays on the CPU it is on. */
static void step_back(const affinity *a)
{
    if (a->narrowed)
        pthread_setaffinity_np(pthread_self(), sizeof a->mine, &a->mine);
}
#else /* no CPU sets: the scheduler places the threads */
typedef struct {
    int narrowed;
} affinity;
static int this_cpu(void) { return -1; }
static void wake_aside(pthread_t t, int cpu, affinity *a)
{
    (void)t;
    (void)cpu;
    a->narrowed = 0;
}
static void step_back(const affinity *a) { (void)a; }
#endif

static struct {
    pthread_mutex_t mu;   /* guards job, parts, n0, n1, workers, asleep, aside; waits on cv */
    pthread_cond_t cv;
    atomic_flag busy;     /* a caller holds the pool */
    atomic_long claim;    /* (job << CLAIM_SHIFT) + next part: workers wait for the job to change */
    atomic_int pending;   /* parts of the current job not yet done */
    atomic_int rc;        /* the first nonzero a part returned */
    part_fn fn;
    void *ctx;
    int n0, n1, parts, workers;
    long start_job[POOL_MAX]; /* the job when worker k started: it waits for the next one */
    pthread_t thread[POOL_MAX];
    int asleep[POOL_MAX];       /* worker k waits on cv */
    affinity aside[POOL_MAX];   /* what the caller that woke worker k narrowed, for k to undo */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, ATOMIC_FLAG_INIT};

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Thread k claims parts of job `job` and runs them until none is left; a claim names the job,
 * so a thread that comes late never takes a part of the next one.  The last part done lets
 * the caller return. */
static void run_claimed(long job, part_fn fn, void *ctx, int n0, int n1, int parts)
{
    const long mask = (1L << CLAIM_SHIFT) - 1;
    long c = atomic_load(&pool.claim);
    while (c >> CLAIM_SHIFT == job && (c & mask) < parts) {
        if (!atomic_compare_exchange_weak(&pool.claim, &c, c + 1))
            continue;
        const int r = run_part(fn, ctx, n0, n1, (int)(c & mask), parts);
        if (r) {
            int zero = 0;
            atomic_compare_exchange_strong(&pool.rc, &zero, r);
        }
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
        c = atomic_load(&pool.claim);
    }
}

static void *pool_worker(void *arg)
{
    const int k = (int)(intptr_t)arg;
    long seen = pool.start_job[k];
    for (;;) {
        const long long until = now_ns() + SPIN_NS;
        while (atomic_load_explicit(&pool.claim, memory_order_acquire) >> CLAIM_SHIFT == seen) {
            for (int i = 0; i < 64; i++)
                cpu_relax();
            if (now_ns() < until) {
                sched_yield(); /* a thread waiting for this core gets it */
                continue;
            }
            pthread_mutex_lock(&pool.mu);
            pool.asleep[k] = 1;
            while (atomic_load(&pool.claim) >> CLAIM_SHIFT == seen)
                pthread_cond_wait(&pool.cv, &pool.mu);
            pool.asleep[k] = 0;
            const affinity back = pool.aside[k];
            pool.aside[k].narrowed = 0;
            pthread_mutex_unlock(&pool.mu);
            step_back(&back);
        }
        /* the job as one snapshot: a worker that claims no part never touches its ctx */
        pthread_mutex_lock(&pool.mu);
        seen = atomic_load(&pool.claim) >> CLAIM_SHIFT;
        const part_fn fn = pool.fn;
        void *ctx = pool.ctx;
        const int n0 = pool.n0, n1 = pool.n1, parts = pool.parts;
        pthread_mutex_unlock(&pool.mu);
        run_claimed(seen, fn, ctx, n0, n1, parts);
    }
    return NULL;
}

static void pool_after_fork(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    atomic_flag_clear(&pool.busy);
    pool.workers = 0;
}

/* Workers 1 .. parts-1 started (under pool.mu); the number of parts that can run. */
static int pool_grow(int parts)
{
    static int atfork;
    if (!atfork && pthread_atfork(NULL, NULL, pool_after_fork) == 0)
        atfork = 1;
    while (pool.workers < parts - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int k = pool.workers + 1;
        pool.start_job[k] = atomic_load(&pool.claim) >> CLAIM_SHIFT;
        pool.asleep[k] = pool.aside[k].narrowed = 0;
        const int err = pthread_create(&t, &attr, pool_worker, (void *)(intptr_t)k);
        pthread_attr_destroy(&attr);
        if (err)
            break;
        pool.thread[k] = t;
        pool.workers++;
    }
    return pool.workers + 1;
}

static int run_parts(part_fn fn, void *ctx, int n0, int n1, int parts)
{
    parts = parts < 1 ? 1 : parts > POOL_MAX ? POOL_MAX : parts;
    if (parts == 1 || atomic_flag_test_and_set(&pool.busy))
        return run_serial(fn, ctx, n0, n1, parts);
    pthread_mutex_lock(&pool.mu);
    const int can = pool_grow(parts);
    if (can < parts) { /* out of threads: the ranges stay, the caller takes the rest */
        pthread_mutex_unlock(&pool.mu);
        atomic_flag_clear(&pool.busy);
        return run_serial(fn, ctx, n0, n1, parts);
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n0 = n0;
    pool.n1 = n1;
    pool.parts = parts;
    atomic_store(&pool.rc, 0);
    atomic_store(&pool.pending, parts);
    const long job = (atomic_load(&pool.claim) >> CLAIM_SHIFT) + 1;
    atomic_store_explicit(&pool.claim, job << CLAIM_SHIFT, memory_order_release);
    /* sleepers woken off this CPU: there one would wait, runnable, while the caller ran every
     * part itself; one not yet awake from the last wake keeps the mask it is to put back */
    int asleep = 0;
    for (int k = 1; k <= pool.workers; k++) {
        if (pool.asleep[k] && !pool.aside[k].narrowed)
            wake_aside(pool.thread[k], this_cpu(), &pool.aside[k]);
        asleep |= pool.asleep[k];
    }
    if (asleep)
        pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    run_claimed(job, fn, ctx, n0, n1, parts);
    /* every part claimed, waiting for the workers' parts to end, yielding as they do: a worker
     * woken from sleep may be put on this CPU, and a caller spinning there kept it off until
     * the time slice ended */
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
        for (int i = 0; i < 64; i++)
            cpu_relax();
        sched_yield();
    }
    const int rc = atomic_load(&pool.rc);
    atomic_flag_clear(&pool.busy);
    return rc;
}
#endif
