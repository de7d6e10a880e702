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
 * any thread that waits for it (gpucnn's matmuls run on Python threads); after SPIN_NS idle it
 * sleeps and costs no CPU (OpenBLAS's workers spin 2^28 cycles, ~0.1 s, and GNU OpenMP's a
 * similar time: those stole a core from whatever ran next, see gpucnn/cpu_runtime.py).  The
 * caller waits for the workers' parts the same way: spinning without yielding, it held up the
 * first passes after an idle pause (the strided net's inference at batch 256, the suite's
 * timing: 12 ms, against a median of 2), most likely where the scheduler had woken the worker
 * on the caller's CPU; yielding, the longest took 5.5-6 ms, the median unchanged.
 *
 * Two threads that spin and yield on one CPU stay there: Linux's balancer left the caller and
 * its worker sharing a CPU, the other idle, for seconds at a time (the strided net's inference
 * at batch 256: a third to a half of its passes at about twice the others' time, each thread
 * runnable but waiting half of it, as /proc/<tid>/schedstat showed).  A worker that finds
 * itself on the CPU of a thread already in the job moves off it (move_off: for a moment an
 * affinity without those CPUs, then its own again): such jobs fell from 25-50% to 0-10%, and
 * in three A/Bs of 300 passes the median pass took 1.50, 2.25 and 1.63 ms against 2.50, 2.23
 * and 2.36 (2-vCPU VM).
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

static struct {
    pthread_mutex_t mu;   /* guards job, parts, n0, n1, sleeping, workers; waits on cv */
    pthread_cond_t cv;
    atomic_flag busy;     /* a caller holds the pool */
    atomic_long claim;    /* (job << CLAIM_SHIFT) + next part: workers wait for the job to change */
    atomic_int pending;   /* parts of the current job not yet done */
    atomic_int rc;        /* the first nonzero a part returned */
    part_fn fn;
    void *ctx;
    int n0, n1, parts, sleeping, workers;
    long start_job[POOL_MAX]; /* the job when worker k started: it waits for the next one */
    atomic_int cpu[POOL_MAX]; /* the CPU thread k (0: the caller) entered this job on; -1: not */
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

#if defined(__linux__) && defined(CPU_COUNT)
static int this_cpu(void) { return sched_getcpu(); }

/* This thread off the CPUs of `away` (they are in its affinity mask, others are left): the
 * kernel moves it as the mask drops them, and it stays where it lands when the mask is back. */
static void move_off(const cpu_set_t *away)
{
    cpu_set_t mine, off;
    if (pthread_getaffinity_np(pthread_self(), sizeof mine, &mine))
        return;
    CPU_AND(&off, &mine, away);
    if (CPU_COUNT(&off) == 0 || CPU_EQUAL(&off, &mine))
        return; /* not on any of them, or nowhere else to go */
    CPU_XOR(&off, &mine, &off);
    if (pthread_setaffinity_np(pthread_self(), sizeof off, &off) == 0)
        pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
}

/* Thread k (of `threads`, 0 the caller) enters the current job: off the CPU of any thread
 * already in it, then its own CPU recorded. */
static void claim_cpu(int k, int threads)
{
    const int here = sched_getcpu();
    cpu_set_t away;
    int shared = 0;
    CPU_ZERO(&away);
    for (int j = 0; j < threads && here >= 0; j++) {
        const int c = atomic_load(&pool.cpu[j]);
        if (j != k && c >= 0 && c < CPU_SETSIZE) {
            CPU_SET(c, &away);
            shared |= c == here;
        }
    }
    if (shared)
        move_off(&away);
    atomic_store(&pool.cpu[k], sched_getcpu());
}
#else /* no CPU sets: the scheduler places the threads */
static int this_cpu(void) { return -1; }
static void claim_cpu(int k, int threads)
{
    (void)k;
    (void)threads;
}
#endif

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
            pool.sleeping++;
            while (atomic_load(&pool.claim) >> CLAIM_SHIFT == seen)
                pthread_cond_wait(&pool.cv, &pool.mu);
            pool.sleeping--;
            pthread_mutex_unlock(&pool.mu);
        }
        /* the job as one snapshot: a worker that claims no part never touches its ctx */
        pthread_mutex_lock(&pool.mu);
        seen = atomic_load(&pool.claim) >> CLAIM_SHIFT;
        const part_fn fn = pool.fn;
        void *ctx = pool.ctx;
        const int n0 = pool.n0, n1 = pool.n1, parts = pool.parts, threads = pool.workers + 1;
        pthread_mutex_unlock(&pool.mu);
        /* off a CPU it shares even when the others have claimed every part before it ran:
         * left there, it would be the next job's part that waits */
        claim_cpu(k, threads);
        run_claimed(seen, fn, ctx, n0, n1, parts);
    }
    return NULL;
}

static void pool_after_fork(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    atomic_flag_clear(&pool.busy);
    pool.workers = pool.sleeping = 0;
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
        pool.start_job[pool.workers + 1] = atomic_load(&pool.claim) >> CLAIM_SHIFT;
        const int err = pthread_create(&t, &attr, pool_worker, (void *)(intptr_t)(pool.workers + 1));
        pthread_attr_destroy(&attr);
        if (err)
            break;
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
    for (int k = 1; k < can; k++)
        atomic_store(&pool.cpu[k], -1);
    atomic_store(&pool.cpu[0], this_cpu());
    const long job = (atomic_load(&pool.claim) >> CLAIM_SHIFT) + 1;
    atomic_store_explicit(&pool.claim, job << CLAIM_SHIFT, memory_order_release);
    if (pool.sleeping)
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
