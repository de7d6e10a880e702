/* Scratch memory kept between calls, per thread, for the drivers whose buffers run to MBs
 * (Winograd's, conv_drivers.h), included by native.c.
 *
 * Why: malloc hands out a buffer of more than ~128 KB by mmap (or from the top of the heap,
 * trimmed back to the kernel on free), so each call's buffers came back as fresh pages, every
 * page faulted in and zeroed by the kernel on first touch.  An 8-image 5x5 stride-2 48 -> 64
 * weight gradient by Winograd (2 MB of scratch) took 470 page faults and 1.78 ms a call, 0.95 ms
 * with its buffers kept (one core, Zen 3); and how many faults a call took depended on what
 * else the process had allocated, so the same step read differently in another process.
 *
 * scratch_get(slot, bytes, &hold) returns slot `slot` of the calling thread, 64-byte aligned
 * and at least `bytes` long, its contents undefined (NULL out of memory); scratch_put(slot,
 * hold) ends its use in the call.  A slot grows to the most asked of it and stays until its
 * thread ends, unless that is more than SCRATCH_KEEP_BYTES.  A driver uses each slot once at a
 * time and calls no other driver that uses slots.  Without POSIX threads (_WIN32) every call
 * allocates and frees its own. */
#include <stdint.h>
#include <stdlib.h>

enum { SCRATCH_SLOTS = 8 };
#define SCRATCH_KEEP_BYTES ((size_t)64 << 20)

static void *scratch_align(void *raw) { return (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63); }

#if defined(_WIN32) || !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L
static void *scratch_get(int slot, size_t bytes, void **hold)
{
    (void)slot;
    *hold = malloc(bytes + 64);
    return *hold ? scratch_align(*hold) : NULL;
}

static void scratch_put(int slot, void *hold)
{
    (void)slot;
    free(hold);
}
#else
#include <pthread.h>

typedef struct {
    void *raw;
    size_t bytes;
} scratch_buf;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_keyed;

static void scratch_free(void *p)
{
    scratch_buf *s = p;
    for (int k = 0; k < SCRATCH_SLOTS; k++)
        free(s[k].raw);
    free(s);
}

static void scratch_make_key(void)
{
    scratch_keyed = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* The calling thread's slots, made on its first call (NULL: none could be). */
static scratch_buf *scratch_slots(void)
{
    pthread_once(&scratch_once, scratch_make_key);
    if (!scratch_keyed)
        return NULL;
    scratch_buf *s = pthread_getspecific(scratch_key);
    if (!s && (s = calloc(SCRATCH_SLOTS, sizeof *s)) && pthread_setspecific(scratch_key, s)) {
        free(s);
        s = NULL;
    }
    return s;
}

static void *scratch_get(int slot, size_t bytes, void **hold)
{
    scratch_buf *s = scratch_slots();
    *hold = NULL;
    if (!s) {  /* no slots: this call's own buffer */
        *hold = malloc(bytes + 64);
        return *hold ? scratch_align(*hold) : NULL;
    }
    if (s[slot].bytes < bytes) {
        free(s[slot].raw);
        s[slot].raw = malloc(bytes + 64);
        s[slot].bytes = s[slot].raw ? bytes : 0;
    }
    return s[slot].raw ? scratch_align(s[slot].raw) : NULL;
}

static void scratch_put(int slot, void *hold)
{
    scratch_buf *s = hold ? NULL : scratch_slots();
    free(hold);
    if (s && s[slot].bytes > SCRATCH_KEEP_BYTES) {
        free(s[slot].raw);
        s[slot].raw = NULL;
        s[slot].bytes = 0;
    }
}
#endif
