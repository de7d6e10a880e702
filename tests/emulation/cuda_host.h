// Host emulation of the CUDA built-ins our kernels use, so kernels/*.cu compile with g++
// (-std=c++20 -pthread) and run on the CPU for tests on machines without a GPU.
//
// A launch runs blockDim host threads.  Each thread walks the blocks of the grid in order, one
// after another, meeting the block's other threads at a std::barrier after each block and at
// every __syncthreads().  Because blocks run one at a time, __shared__ arrays can be function
// statics: one copy serves every block.
#pragma once
#include <barrier>
#include <cstddef>
#include <math.h>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

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

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
