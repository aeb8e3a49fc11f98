// A thin C API over the CUDA launcher (ffla_launch.h) so tests and benchmarks can call the
// kernel through ctypes on PyTorch CUDA tensors. Not part of the TensorRT plugin.
//
// Build (repository root; XX = the GPU's compute capability, e.g. 90):
//   nvcc -O3 -std=c++17 -shared -Xcompiler -fPIC -I plugins/ffla -gencode arch=compute_XX,code=sm_XX
//     plugins/ffla/ffla_kernel.cu plugins/ffla/ffla_gpu_test.cu -o libffla_gpu.so
#include <cuda_runtime_api.h>

#include "ffla_launch.h"

using lvt_edge::ffla::DType;
using lvt_edge::ffla::Params;

extern "C" {

const char* ffla_gpu_unsupported(const Params* p) {
    return p ? lvt_edge::ffla::unsupported(*p) : "FFLA: params is null";
}

size_t ffla_gpu_workspace_bytes(const Params* p) { return p ? lvt_edge::ffla::workspaceBytes(*p) : 0; }

// Enqueues the kernel on `stream` (a cudaStream_t, e.g. torch.cuda.current_stream().cuda_stream)
// and returns the cudaError_t of the launch; io_dtype 0 float32, 1 float16. Does not synchronise.
int ffla_gpu_run(const Params* p, int io_dtype, const void* q, const void* k, const void* v, const float* gate_weight,
                 const float* gate_bias, void* out, void* workspace, void* stream) {
    if (!p || (io_dtype != int(DType::kFloat32) && io_dtype != int(DType::kFloat16))) return int(cudaErrorInvalidValue);
    return int(lvt_edge::ffla::launch(*p, DType(io_dtype), q, k, v, gate_weight, gate_bias, out, workspace,
                                      static_cast<cudaStream_t>(stream)));
}

const char* ffla_gpu_error_string(int err) { return cudaGetErrorString(cudaError_t(err)); }

}  // extern "C"
