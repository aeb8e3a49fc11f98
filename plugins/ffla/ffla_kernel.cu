// The CUDA launcher of the fused FFLA kernel (ffla_launch.h). The kernel body and its barrier
// schedule are in ffla_kernel.cuh, shared with the CPU executor (ffla_cpu.cpp) that the tests
// run on machines without a GPU.
//
// Check that it compiles for every architecture the plugin ships for (repository root; one
// -gencode arch=compute_XX,code=sm_XX per architecture, XX in 75 80 86 87 89 90 100 110 120):
//   nvcc -std=c++17 -c plugins/ffla/ffla_kernel.cu -o ffla_kernel.o -gencode arch=compute_75,code=sm_75 ...
//
// Launch shape: kBlockThreads threads per block and as many blocks as fit the device at once
// (at most one per group); each block strides over the (batch, head, sequence) groups, so the
// gate weights are staged into shared memory once per block. When the staged weights do not
// fit the device's shared memory the kernel reads them from global memory (L1/L2-cached).
//
// Performance: not measured yet (benchmarks/ffla_kernel.py does it). Counted by hand for
// lvt-base (d = 64, 16 tokens per chunk), every phase is bound by shared-memory loads, about
// 1.25 per multiply-add in the gate mat-vec that dominates; on an H200 that estimates ~0.1 ms
// per node against a 3.9 us memory floor, and even perfect CUDA-core code would need ~7x the
// floor. Reaching the floor needs the gate (and kv) on tensor cores: a GPU-only path that
// belongs behind this launcher, with fp32 accuracy kept (e.g. split-fp16 / 3xTF32 products).
#include "ffla_launch.h"

#include "ffla_kernel.cuh"

namespace lvt_edge {
namespace ffla {
namespace {

constexpr size_t kDefaultSmemBytes = 48 * 1024;  // above this a kernel must opt in

struct BlockExecutor {
    __device__ int threads() const { return int(blockDim.x); }

    template <class F>
    __device__ void phase(F&& f) const {
        f(int(threadIdx.x));
        __syncthreads();
    }

    template <class F, class G>
    __device__ void phaseWithoutBarrier(F&& f, G&& g) const {
        f(int(threadIdx.x));
        g(int(threadIdx.x));
        __syncthreads();
    }
};

template <class T>
__global__ void __launch_bounds__(kBlockThreads) fflaKernel(const Args<T> args) {
    extern __shared__ float smem[];
    BlockExecutor ex;
    runBlock(ex, args, smem, int64_t(blockIdx.x), int64_t(gridDim.x));
}

struct Device {
    int smemOptin = 0;  // bytes of shared memory one block may opt in to
    int sms = 0;
};

cudaError_t currentDevice(Device* out) {
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&out->smemOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&out->sms, cudaDevAttrMultiProcessorCount, device);
    return err;
}

size_t smemBytes(const Geometry& g, bool stagedWeights) {
    return size_t(smemLayout(g, stagedWeights).total) * sizeof(float);
}

template <class T>
cudaError_t launchTyped(const Geometry& g, const Device& dev, const void* q, const void* k, const void* v,
                        const float* gateWeight, const float* gateBias, void* out, void* workspace,
                        cudaStream_t stream) {
    // Staged weights turn the gate's global reads into conflict-free shared memory reads.
    Args<T> a = makeArgs<T>(g, smemBytes(g, true) <= size_t(dev.smemOptin), q, k, v, gateWeight, gateBias, out,
                            static_cast<float*>(workspace));

    const size_t bytes = size_t(a.smem.total) * sizeof(float);
    cudaError_t err = cudaSuccess;
    if (bytes > kDefaultSmemBytes)
        err = cudaFuncSetAttribute(fflaKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
    int perSm = 0;
    if (err == cudaSuccess)
        err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, fflaKernel<T>, kBlockThreads, bytes);
    if (err != cudaSuccess) return err;
    const int64_t resident = int64_t(dev.sms) * (perSm > 0 ? perSm : 1);
    const unsigned blocks = unsigned(g.groups < resident ? g.groups : resident);
    fflaKernel<T><<<blocks, kBlockThreads, bytes, stream>>>(a);
    return cudaGetLastError();
}

}  // namespace

const char* unsupported(const Params& p) {
    if (const char* why = paramsProblem(p)) return why;
    Device dev;
    if (currentDevice(&dev) != cudaSuccess) {
        cudaGetLastError();  // no usable device here: launch() will report it, not a shape problem
        return nullptr;
    }
    if (smemBytes(makeGeometry(p), false) > size_t(dev.smemOptin))
        return "FFLA: head_dim too large for this GPU's shared memory (kv is d x d fp32 next to a token chunk)";
    return nullptr;
}

size_t workspaceBytes(const Params& p) { return paramsProblem(p) ? 0 : workspaceBytesFor(makeGeometry(p)); }

cudaError_t launch(const Params& p, DType io, const void* q, const void* k, const void* v, const float* gate_weight,
                   const float* gate_bias, void* out, void* workspace, cudaStream_t stream) {
    if (unsupported(p)) return cudaErrorInvalidValue;
    const Geometry g = makeGeometry(p);
    if (g.groups == 0) return cudaSuccess;
    if (!q || !k || !v || !out || (g.gateMode != kGateNone && (!gate_weight || !gate_bias)) ||
        (workspaceBytesFor(g) > 0 && !workspace))
        return cudaErrorInvalidValue;
    Device dev;
    const cudaError_t err = currentDevice(&dev);
    if (err != cudaSuccess) return err;
    switch (io) {
        case DType::kFloat32:
            return launchTyped<float>(g, dev, q, k, v, gate_weight, gate_bias, out, workspace, stream);
        case DType::kFloat16:
            return launchTyped<Half>(g, dev, q, k, v, gate_weight, gate_bias, out, workspace, stream);
    }
    return cudaErrorInvalidValue;
}

}  // namespace ffla
}  // namespace lvt_edge
