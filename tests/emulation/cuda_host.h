// Host emulation of the CUDA built-ins our kernels use, so kernels/*.cu compile with g++
// (-std=c++20 -pthread) and run on the CPU for tests on machines without a GPU.
//
// A launch runs blockDim host threads.  Each thread walks the blocks of the grid in order, one
// after another, meeting the block's other threads at a std::barrier after each block and at
// every __syncthreads().  Because blocks run one at a time, __shared__ arrays can be function
// statics: one copy serves every block.  With EMU_FIBERS defined the block's threads are
// fibers on the calling thread instead (see below).
#pragma once
#include <barrier>
#include <cstddef>
#include <math.h>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#ifdef EMU_FIBERS
#include <cstdint>
#include <ucontext.h>
#endif

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)  // a hint to nvcc about registers; nothing to emulate
#define __shared__ static

namespace emu {
#ifndef EMU_FIBERS
inline thread_local std::barrier<>* block_barrier = nullptr;

template <class Body>
void launch(unsigned grid, unsigned block, Body body) {
    std::barrier<> barrier(block);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t) {
        threads.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            blockDim = {block, 1, 1};
            gridDim = {grid, 1, 1};
            block_barrier = &barrier;
            for (unsigned b = 0; b < grid; ++b) {
                blockIdx = {b, 0, 0};
                body();
                barrier.arrive_and_wait();  // the next block starts when this one is done
            }
        });
    }
    for (auto& th : threads) th.join();
}

inline void sync_block() { block_barrier->arrive_and_wait(); }
#else
// EMU_FIBERS: a block's threads as fibers on the calling thread.  Each round resumes every
// unfinished fiber in thread order until its next __syncthreads() or its end, which is a
// barrier's semantics; the built-ins are set before each resume.  Far faster than a host
// thread per CUDA thread (no futex per barrier), so the stand-in CuPy uses it; the kernel
// tests keep host threads, whose interleavings also exercise races in a block.  On x86-64 a
// switch saves the callee-saved registers and the stack pointer (emu_switch, below); elsewhere
// ucontext's swapcontext, which also makes a system call for the signal mask at every switch.
inline thread_local void (*run_body)(void*) = nullptr;
inline thread_local void* body_arg = nullptr;

#if defined(__x86_64__)
// emu_switch(&save, to): push the callee-saved registers, store the stack pointer in save,
// load `to` and pop what was pushed there; `ret` resumes that fiber (or the scheduler).
extern "C" void emu_switch(void** save, void* to);
asm(R"(
    .text
    .weak emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");

struct Fiber {
    void* sp = nullptr;
    bool done = false;
};
inline thread_local void* scheduler_sp = nullptr;
inline thread_local Fiber* running = nullptr;

[[noreturn]] inline void fiber_main() {
    run_body(body_arg);
    running->done = true;
    emu_switch(&running->sp, scheduler_sp);
    __builtin_unreachable();
}

// A fresh fiber whose first switch `ret`s into fiber_main with the stack as after a call.
inline void start(Fiber& f, char* base, std::size_t size) {
    auto top = reinterpret_cast<void**>(reinterpret_cast<std::uintptr_t>(base + size) & ~std::uintptr_t(15));
    *--top = nullptr;                                   // fiber_main's (unused) return address
    *--top = reinterpret_cast<void*>(&fiber_main);      // where emu_switch returns to
    for (int i = 0; i < 6; ++i) *--top = nullptr;       // the registers it pops
    f.sp = top;
    f.done = false;
}
inline void resume(Fiber& f) { emu_switch(&scheduler_sp, f.sp); }
inline void sync_block() { emu_switch(&running->sp, scheduler_sp); }
#else
struct Fiber {
    ucontext_t ctx;
    bool done = false;
};
inline thread_local ucontext_t scheduler_ctx;
inline thread_local Fiber* running = nullptr;

inline void fiber_main() {
    run_body(body_arg);
    running->done = true;
    swapcontext(&running->ctx, &scheduler_ctx);
}

inline void start(Fiber& f, char* base, std::size_t size) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = base;
    f.ctx.uc_stack.ss_size = size;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
    f.done = false;
}
inline void resume(Fiber& f) { swapcontext(&scheduler_ctx, &f.ctx); }
inline void sync_block() { swapcontext(&running->ctx, &scheduler_ctx); }
#endif

template <class Body>
void launch(unsigned grid, unsigned block, Body body) {
    constexpr std::size_t stack = 64 * 1024;
    std::vector<Fiber> fibers(block);
    std::unique_ptr<char[]> stacks(new char[stack * block]);  // not zeroed: 16 MiB a launch
    run_body = [](void* b) { (*static_cast<Body*>(b))(); };
    body_arg = &body;
    blockDim = {block, 1, 1};
    gridDim = {grid, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned t = 0; t < block; ++t) start(fibers[t], stacks.get() + t * stack, stack);
        for (bool left = true; left;) {
            left = false;
            for (unsigned t = 0; t < block; ++t) {
                if (fibers[t].done) continue;
                threadIdx = {t, 0, 0};
                blockIdx = {b, 0, 0};
                running = &fibers[t];
                resume(fibers[t]);
                left = left || !fibers[t].done;
            }
        }
    }
}
#endif

// Call kernel k with args[i] pointing at its i-th argument, as cuLaunchKernel takes them.
template <class... P, std::size_t... I>
void call_packed(void (*k)(P...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

template <class... P>
void launch_packed(unsigned grid, unsigned block, void (*k)(P...), void** args) {
    launch(grid, block, [&] { call_packed(k, args, std::index_sequence_for<P...>{}); });
}
}  // namespace emu

inline void __syncthreads() { emu::sync_block(); }
