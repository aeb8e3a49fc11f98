// A plain host reference of the FFLinearAttention node (plugins/ffla/README.md, "Equation"),
// written from the specification alone, in double precision: what the conformance harness
// compares the plugin's enqueue with.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lvt_edge {
namespace ffla_test {

// The node's attributes (plugins/ffla/README.md, "Attributes").
struct Attrs {
    int32_t heads = 2;
    int32_t head_dim = 16;
    int32_t axis = 0;
    int32_t grid = 3;
    int32_t shift = 1;
    int32_t shift_div = 4;
    int32_t gate_mode = 1;
    int32_t official_border = 0;
    float eps = 1e-6f;

    int32_t tokens() const { return grid * grid; }
    int32_t channels() const { return heads * head_dim; }
    int32_t gates() const { return gate_mode == 2 ? 2 : 1; }
};

// Spatial 8-neighbour shift: channel group n takes cell (i + di, j + dj).
inline constexpr int kNeighbourOffsets[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {-1, -1}, {1, 1}, {-1, 1}, {1, -1}};

// out = FFLA(q, k, v), all B x T x S x C, accumulated in double.
inline std::vector<float> reference(Attrs const& a, int B, int T, std::vector<float> const& q,
                                    std::vector<float> const& k, std::vector<float> const& v,
                                    std::vector<float> const& gw, std::vector<float> const& gb) {
    int const S = a.tokens();
    int const C = a.channels();
    int const G = a.grid;
    int const d = a.head_dim;
    auto at = [&](int b, int t, int s, int c) { return ((size_t(b) * T + t) * S + s) * C + c; };

    // 1. neighbourhood shift of k and v
    std::vector<float> ks(k.size()), vs(v.size());
    for (int b = 0; b < B; ++b)
        for (int t = 0; t < T; ++t)
            for (int s = 0; s < S; ++s)
                for (int c = 0; c < C; ++c) {
                    int st = t, ss = s;
                    bool zero = false;
                    if (a.shift && a.axis == 1) {  // spatial node: temporal shift
                        int const f = C / a.shift_div;
                        if (c < f) st = t + 1;
                        else if (c < 2 * f) st = t - 1;
                        zero = st < 0 || st >= T;
                    } else if (a.shift && a.axis == 0) {  // temporal node: 8-neighbour spatial shift
                        int const f = C / 16;
                        if (f > 0 && c < 8 * f) {
                            int const n = c / f;
                            int const i = s / G + kNeighbourOffsets[n][0];
                            int const j = s % G + kNeighbourOffsets[n][1];
                            if (i >= 0 && i < G && j >= 0 && j < G) ss = i * G + j;
                            else zero = !(a.official_border && n >= 4);
                        }
                    }
                    ks[at(b, t, s, c)] = zero ? 0.f : k[at(b, st, ss, c)];
                    vs[at(b, t, s, c)] = zero ? 0.f : v[at(b, st, ss, c)];
                }

    // 2-4. per (batch, sequence, head): phi, gate, linear attention over the sequence
    std::vector<float> out(q.size());
    int const L = a.axis == 0 ? T : S;
    int const sequences = a.axis == 0 ? S : T;
    double const offset = 1.0 / std::sqrt(double(d));
    auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
    std::vector<double> qp(size_t(L) * d), kp(size_t(L) * d), z(3 * size_t(d)), kv(size_t(d) * d), ksum(d);
    for (int b = 0; b < B; ++b)
        for (int seq = 0; seq < sequences; ++seq)
            for (int h = 0; h < a.heads; ++h) {
                auto index = [&](int i, int e) {
                    return a.axis == 0 ? at(b, i, seq, h * d + e) : at(b, seq, i, h * d + e);
                };
                for (int i = 0; i < L; ++i) {
                    for (int e = 0; e < d; ++e) {
                        z[e] = std::max(0.0, double(q[index(i, e)])) + offset;
                        z[d + e] = std::max(0.0, double(ks[index(i, e)])) + offset;
                        z[2 * d + e] = vs[index(i, e)];
                    }
                    for (int e = 0; e < d; ++e) {
                        double gq = 1.0, gk = 1.0;
                        if (a.gate_mode != 0) {
                            for (int g = 0; g < a.gates(); ++g) {
                                double acc = gb[size_t(g) * d + e];
                                for (int m = 0; m < 3 * d; ++m) acc += gw[(size_t(g) * d + e) * 3 * d + m] * z[m];
                                if (g == 0) gq = sigmoid(acc);
                                if (g == a.gates() - 1) gk = sigmoid(acc);
                            }
                        }
                        qp[size_t(i) * d + e] = gq * z[e];
                        kp[size_t(i) * d + e] = gk * z[d + e];
                    }
                }
                std::fill(kv.begin(), kv.end(), 0.0);
                std::fill(ksum.begin(), ksum.end(), 0.0);
                for (int j = 0; j < L; ++j)
                    for (int e1 = 0; e1 < d; ++e1) {
                        ksum[e1] += kp[size_t(j) * d + e1];
                        for (int e2 = 0; e2 < d; ++e2) kv[size_t(e1) * d + e2] += kp[size_t(j) * d + e1] * vs[index(j, e2)];
                    }
                for (int i = 0; i < L; ++i) {
                    double den = a.eps;
                    for (int e = 0; e < d; ++e) den += qp[size_t(i) * d + e] * ksum[e];
                    for (int e2 = 0; e2 < d; ++e2) {
                        double num = 0.0;
                        for (int e1 = 0; e1 < d; ++e1) num += qp[size_t(i) * d + e1] * kv[size_t(e1) * d + e2];
                        out[index(i, e2)] = float(num / den);
                    }
                }
            }
    return out;
}

}  // namespace ffla_test
}  // namespace lvt_edge
