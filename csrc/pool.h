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
 * any thread that waits for it; after SPIN_NS idle it
 * sleeps and costs no CPU (OpenBLAS's workers spin 2^28 cycles, ~0.1 s, and GNU OpenMP's a
 * similar time: those stole a core from whatever ran next, see gpucnn/cpu_runtime.py).  The
 * caller waits for the workers' parts the same way: spinning without yielding, it held up the
 * first passes after an idle pause (the strided net's inference at batch 256, the suite's
 * timing: 12 ms, against a median of 2), most likely where the scheduler had woken the worker
 * on the caller's CPU; yielding, the longest took 5.5-6 ms, the median unchanged.
 *
 * A worker the scheduler wakes on the caller's CPU waits there, runnable, while the caller
 * runs the job's parts (the strided net's inference at batch 256, after each idle pause: in a
 * third to a half of its passes, at about twice the others' time, as /proc/<tid>/schedstat
 * showed).  So a worker about to sleep leaves the caller's CPU out of its affinity, and puts
 * its mask back once awake (aside_of_caller, step_back): over 300 passes after pauses the
 * median pass took 1.52-2.02 ms, the 95th percentile 2.2-2.4, against 1.85-2.18 and 3.1-3.5
 * when each worker had its part fixed and moved off a shared CPU on taking it (2-vCPU VM).  A
 * spinning worker that ends up on the caller's CPU is moved by the kernel's balancer within
 * 5-20 ms; moving it on sight of a job cut that to 2-10 ms, no gain a pass showed.
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
    atomic_int caller_cpu;    /* the CPU the caller published the last job on; -1: unknown */
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

/* The affinity mask a thread narrowed, to restore. */
typedef struct {
    cpu_set_t mine;
    int narrowed;
} affinity;

/* This thread's affinity less the CPUs of `away`, where some are in it and others are left:
 * the kernel moves it off them, and a wake-up does not put it there. */
static void step_aside(const cpu_set_t *away, affinity *a)
{
    cpu_set_t off;
    a->narrowed = 0;
    if (pthread_getaffinity_np(pthread_self(), sizeof a->mine, &a->mine))
        return;
    CPU_AND(&off, &a->mine, away);
    if (CPU_COUNT(&off) == 0 || CPU_EQUAL(&off, &a->mine))
        return; /* not on any of them, or nowhere else to go */
    CPU_XOR(&off, &a->mine, &off);
    a->narrowed = pthread_setaffinity_np(pthread_self(), sizeof off, &off) == 0;
}

/* The mask step_aside narrowed, back: the thread stays on the CPU it is on. */
static void step_back(const affinity *a)
{
    if (a->narrowed)
        pthread_setaffinity_np(pthread_self(), sizeof a->mine, &a->mine);
}

/* A worker about to sleep steps aside from the CPU the caller took its last job on: a worker
 * woken there waits, runnable, until the caller yields it the CPU. */
static void aside_of_caller(affinity *a)
{
    const int c = atomic_load(&pool.caller_cpu);
    cpu_set_t away;
    CPU_ZERO(&away);
    if (c >= 0 && c < CPU_SETSIZE)
        CPU_SET(c, &away);
    step_aside(&away, a);
}

#else /* no CPU sets: the scheduler places the threads */
typedef struct {
    int narrowed;
} affinity;
static void aside_of_caller(affinity *a) { a->narrowed = 0; }
static void step_back(const affinity *a) { (void)a; }
static int this_cpu(void) { return -1; }
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
            affinity a;
            aside_of_caller(&a);
            pthread_mutex_lock(&pool.mu);
            pool.sleeping++;
            while (atomic_load(&pool.claim) >> CLAIM_SHIFT == seen)
                pthread_cond_wait(&pool.cv, &pool.mu);
            pool.sleeping--;
            pthread_mutex_unlock(&pool.mu);
            step_back(&a);
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
    atomic_store(&pool.caller_cpu, this_cpu());
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
