// The CUDA launcher of the fused FFLA kernel: what the TensorRT plugin's enqueue calls.
#pragma once

#include <cuda_runtime_api.h>

#include "ffla_params.h"

namespace lvt_edge {
namespace ffla {

// nullptr when `p` is a shape/attribute combination the kernel supports, else why not.
const char* unsupported(const Params& p);

// Scratch memory the launch needs (bytes, may be 0).
size_t workspaceBytes(const Params& p);

// out = FFLA(q, k, v, gate_weight, gate_bias) on `stream`. q, k, v, out are `io` (fp32 or fp16),
// gate_weight / gate_bias are float32 (ignored for kGateNone); all accumulation is fp32.
cudaError_t launch(const Params& p, DType io, const void* q, const void* k, const void* v,
                   const float* gate_weight, const float* gate_bias, void* out, void* workspace,
                   cudaStream_t stream);

}  // namespace ffla
}  // namespace lvt_edge
