// Parameters of one lvt_edge::FFLinearAttention node, shared by the CUDA kernel, its CPU
// executor and the TensorRT plugin glue. Plain C++: no CUDA or TensorRT header needed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lvt_edge {
namespace ffla {

enum Axis : int32_t { kTemporal = 0, kSpatial = 1 };  // attend over the T frames / the S tokens
enum GateMode : int32_t { kGateNone = 0, kGateShared = 1, kGateSeparate = 2 };
enum class DType : int32_t { kFloat32 = 0, kFloat16 = 1 };  // of q, k, v and out; gates are float32

// Tensors q, k, v, out: batch x frames x tokens x channels, tokens = grid * grid (s = i * grid + j),
// channels = heads * head_dim (c = head * head_dim + e). gate_weight: gates x head_dim x 3 head_dim,
// gate_bias: gates x head_dim, gates = 2 for kGateSeparate ([0] gates q, [1] gates k), else 1.
struct Params {
    int32_t batch = 0;
    int32_t frames = 0;
    int32_t grid = 0;
    int32_t heads = 0;
    int32_t head_dim = 0;
    int32_t axis = kTemporal;
    int32_t shift = 1;
    int32_t shift_div = 4;
    int32_t gate_mode = kGateShared;
    int32_t official_border = 0;
    float eps = 1e-6f;

    int32_t tokens() const { return grid * grid; }
    int32_t channels() const { return heads * head_dim; }
    int32_t gates() const { return gate_mode == kGateSeparate ? 2 : 1; }
};

}  // namespace ffla
}  // namespace lvt_edge
