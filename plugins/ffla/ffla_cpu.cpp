// The FFLA kernel (ffla_kernel.cuh) run on the CPU, behind a C API for ctypes.
//
// Build (from the repository root; no CUDA headers needed):
//   g++ -O2 -std=c++17 -shared -fPIC -I plugins/ffla plugins/ffla/ffla_cpu.cpp -o libffla_cpu.so
// Test-only variants (tests/plugins build them to show the tests catch these bugs):
//   -DFFLA_BREAK_BARRIER  drops the barrier between the gate and the kv accumulation
//   -DFFLA_BREAK_SHIFT    reads a wrong neighbour / frame in both shifts
//
// The executor runs each phase on every thread id of a block, one after another, in an order
// shuffled anew for every phase, then "passes the barrier" by returning. Shared memory and the
// workspace start as NaN, so a phase that reads what another thread has not written yet (a
// missing barrier) or what was never written turns the output wrong.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <vector>

#include "ffla_kernel.cuh"

namespace lvt_edge {
namespace ffla {
namespace {

class ShuffledExecutor {
public:
    // seed 0 keeps the thread ids in order.
    ShuffledExecutor(int threads, uint32_t seed) : order_(threads), rng_(seed), shuffle_(seed != 0) {
        std::iota(order_.begin(), order_.end(), 0);
    }

    int threads() const { return int(order_.size()); }

    template <class F>
    void phase(F&& f) {
        reorder();
        for (int tid : order_) f(tid);
    }

    // Two phases with no barrier between them: each thread runs both before the next starts.
    template <class F, class G>
    void phaseWithoutBarrier(F&& f, G&& g) {
        reorder();
        for (int tid : order_) {
            f(tid);
            g(tid);
        }
    }

private:
    void reorder() {
        if (shuffle_) std::shuffle(order_.begin(), order_.end(), rng_);
    }

    std::vector<int> order_;
    std::mt19937 rng_;
    bool shuffle_;
};

constexpr float kPoison = std::numeric_limits<float>::quiet_NaN();

enum Status : int {
    kOk = 0,
    kUnsupported = 1,     // ffla_cpu_unsupported() says why
    kBadDtype = 2,
    kNullPointer = 3,
    kBadOptions = 4,
    kOutOfMemory = 5,
};

}  // namespace
}  // namespace ffla
}  // namespace lvt_edge

using lvt_edge::ffla::Params;

extern "C" {

// How the CPU executor runs the blocks; zero fields take the defaults.
struct FflaCpuOptions {
    uint32_t shuffle_seed;  // 0: thread ids in order; else the seed of the per-phase shuffle
    int32_t threads;        // threads per block (default kBlockThreads)
    int32_t blocks;         // blocks striding over the groups (default 3, so blocks reuse shared memory)
    int32_t chunk_tokens;   // tokens per chunk (default: what the GPU uses for this head_dim)
    int32_t global_weights; // 1: read the gate weights from global memory, as the GPU does when
                            // they do not fit shared memory
};

}  // extern "C"

namespace lvt_edge {
namespace ffla {
namespace {

template <class T>
int run(const Params& p, const void* q, const void* k, const void* v, const float* gw, const float* gb, void* out,
        const FflaCpuOptions& o) {
    const int threads = o.threads > 0 ? o.threads : kBlockThreads;
    const Geometry g = makeGeometry(p, o.chunk_tokens);
    if (g.groups == 0) return kOk;
    std::vector<float> workspace(workspaceBytesFor(g) / sizeof(float), kPoison);
    Args<T> a = makeArgs<T>(g, o.global_weights == 0, q, k, v, gw, gb, out, workspace.data());

    const int64_t blocks = std::min<int64_t>(g.groups, o.blocks > 0 ? o.blocks : 3);
    std::vector<float> smem(size_t(a.smem.total));
    for (int64_t block = 0; block < blocks; ++block) {
        std::fill(smem.begin(), smem.end(), kPoison);
        ShuffledExecutor ex(threads, o.shuffle_seed == 0 ? 0u : o.shuffle_seed + uint32_t(block));
        runBlock(ex, a, smem.data(), block, blocks);
    }
    return kOk;
}

}  // namespace
}  // namespace ffla
}  // namespace lvt_edge

extern "C" {

// nullptr when the kernel supports `p`, else why not.
const char* ffla_cpu_unsupported(const Params* p) {
    return p ? lvt_edge::ffla::paramsProblem(*p) : "FFLA: params is null";
}

// out = FFLA(q, k, v, gw, gb). io_dtype: 0 float32, 1 float16 (IEEE binary16 bits) for q, k, v,
// out; gw / gb are float32 and may be null when gate_mode is 0. Returns 0 or a Status code.
int ffla_cpu_run_ex(const Params* p, int io_dtype, const void* q, const void* k, const void* v, const float* gw,
                    const float* gb, void* out, const FflaCpuOptions* options) {
    using namespace lvt_edge::ffla;
    if (!p || !options) return kNullPointer;
    if (paramsProblem(*p)) return kUnsupported;
    if (options->threads < 0 || options->blocks < 0 || options->chunk_tokens < 0) return kBadOptions;
    if (p->batch == 0) return kOk;
    if (!q || !k || !v || !out || (p->gate_mode != kGateNone && (!gw || !gb))) return kNullPointer;
    try {
        if (io_dtype == int(DType::kFloat32)) return run<float>(*p, q, k, v, gw, gb, out, *options);
        if (io_dtype == int(DType::kFloat16)) return run<Half>(*p, q, k, v, gw, gb, out, *options);
        return kBadDtype;
    } catch (const std::bad_alloc&) {
        return kOutOfMemory;
    }
}

// The same with the executor's defaults and a shuffled thread order (seed != 0).
int ffla_cpu_run(const Params* p, int io_dtype, const void* q, const void* k, const void* v, const float* gw,
                 const float* gb, void* out, unsigned shuffle_seed) {
    FflaCpuOptions options{};
    options.shuffle_seed = shuffle_seed;
    return ffla_cpu_run_ex(p, io_dtype, q, k, v, gw, gb, out, &options);
}

// Bytes the GPU launch would ask for as workspace (the same rule as workspaceBytes()).
size_t ffla_cpu_workspace_bytes(const Params* p) {
    using namespace lvt_edge::ffla;
    return p && !paramsProblem(*p) ? workspaceBytesFor(makeGeometry(*p)) : 0;
}

// Layout checks for the ctypes mirrors.
size_t ffla_cpu_sizeof_params() { return sizeof(Params); }
size_t ffla_cpu_sizeof_options() { return sizeof(FflaCpuOptions); }

// The host fp16 conversions the CPU path uses, for testing them against NumPy.
void ffla_cpu_half_to_float(const uint16_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = lvt_edge::ffla::halfBitsToFloat(src[i]);
}
void ffla_cpu_float_to_half(const float* src, uint16_t* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = lvt_edge::ffla::floatToHalfBits(src[i]);
}

}  // extern "C"
