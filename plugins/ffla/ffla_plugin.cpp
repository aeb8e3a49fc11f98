// TensorRT IPluginV3 glue for lvt_edge::FFLinearAttention (see ffla_plugin.h and README.md).
#include "ffla_plugin.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <sstream>
#include <utility>

#include "ffla_launch.h"

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IDimensionExpr;
using nvinfer1::ILogger;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;
using Severity = nvinfer1::ILogger::Severity;

namespace lvt_edge {
namespace ffla {
namespace {

constexpr char const* kPluginName = "FFLinearAttention";
constexpr char const* kPluginVersion = "1";
constexpr char const* kPluginNamespace = "lvt_edge";

// Bumped whenever the serialised field set changes meaning, so an engine built by an older or
// newer library is refused with a message instead of running with misread attributes.
constexpr char const* kFormatVersionField = "format_version";
constexpr int32_t kFormatVersion = 1;

enum IoIndex : int32_t { kQ = 0, kK = 1, kV = 2, kGateWeight = 3, kGateBias = 4, kNbInputs = 5 };
constexpr int32_t kNbOutputs = 1;
constexpr int32_t kRank = 4;  // batch x frames x tokens x channels
constexpr int32_t kFailure = 1;

// The node's attributes, in the order the creator declares them (plugins/ffla/README.md).
struct IntAttribute {
    char const* name;
    int32_t Params::*member;
};
constexpr IntAttribute kIntAttributes[] = {
    {"heads", &Params::heads},         {"head_dim", &Params::head_dim},
    {"axis", &Params::axis},           {"grid", &Params::grid},
    {"shift", &Params::shift},         {"shift_div", &Params::shift_div},
    {"gate_mode", &Params::gate_mode}, {"official_border", &Params::official_border},
};
constexpr char const* kEpsName = "eps";
constexpr int32_t kNbAttributes = sizeof(kIntAttributes) / sizeof(kIntAttributes[0]) + 1;
constexpr int64_t kMaxChannels = int64_t{1} << 20;  // keeps every index product far from int32 overflow
constexpr int64_t kMaxGrid = int64_t{1} << 10;

// ---- logging -------------------------------------------------------------------------------

std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

ILogger* currentLogger() noexcept {
    ILogger* logger = nullptr;
    if (nvinfer1::ILoggerFinder* finder = gLoggerFinder.load()) {
        try {
            logger = finder->findLogger();  // per call: TensorRT answers for the calling thread
        } catch (...) {
            logger = nullptr;
        }
    }
#ifdef LVT_EDGE_FFLA_STATIC_REGISTRATION
    if (logger == nullptr) logger = getLogger();  // libnvinfer's global logger: no finder when preloaded
#endif
    return logger;
}

void logMessage(Severity severity, char const* where, std::string const& message) noexcept {
    try {
        std::string const named = where && *where ? std::string(" '") + where + "'" : std::string();
        std::string const text = kPluginName + named + ": " + message;
        if (ILogger* logger = currentLogger()) {
            logger->log(severity, text.c_str());
        } else if (severity <= Severity::kWARNING) {
            std::fprintf(stderr, "[lvt_edge] %s\n", text.c_str());  // no TensorRT logger yet: still say why
        }
    } catch (...) {
        std::fputs("[lvt_edge] FFLinearAttention: failed to format a log message\n", stderr);
    }
}

void logError(char const* where, std::string const& message) noexcept {
    logMessage(Severity::kERROR, where, message);
}

// Runs `body`, turning any exception into a logged error and `onError`: TensorRT calls every
// plugin method through a noexcept interface.
template <typename R, typename Body>
R guarded(char const* where, char const* method, R onError, Body&& body) noexcept {
    try {
        return body();
    } catch (std::exception const& e) {
        logError(where, std::string(method) + " failed: " + e.what());
    } catch (...) {
        logError(where, std::string(method) + " failed with an unknown exception");
    }
    return onError;
}

// ---- attributes and shapes -----------------------------------------------------------------

std::string dimsText(Dims const& d) {
    std::ostringstream s;
    s << '[';
    for (int32_t i = 0; i < d.nbDims; ++i) s << (i ? " x " : "") << d.d[i];
    s << ']';
    return s.str();
}

// Why the attributes cannot describe an FFLA node, or "" when they can.
std::string attributeProblem(Params const& p) {
    std::ostringstream why;
    if (p.heads < 1 || p.head_dim < 1) {
        why << "heads (" << p.heads << ") and head_dim (" << p.head_dim << ") must be >= 1";
    } else if (int64_t{p.heads} * p.head_dim > kMaxChannels) {
        why << "heads * head_dim = " << int64_t{p.heads} * p.head_dim << " channels is more than " << kMaxChannels;
    } else if (p.grid < 1 || p.grid > kMaxGrid) {
        why << "grid must be in [1, " << kMaxGrid << "], got " << p.grid;
    } else if (p.axis != kTemporal && p.axis != kSpatial) {
        why << "axis must be 0 (temporal) or 1 (spatial), got " << p.axis;
    } else if (p.gate_mode != kGateNone && p.gate_mode != kGateShared && p.gate_mode != kGateSeparate) {
        why << "gate_mode must be 0 (none), 1 (shared) or 2 (separate), got " << p.gate_mode;
    } else if (p.shift != 0 && p.shift != 1) {
        why << "shift must be 0 or 1, got " << p.shift;
    } else if (p.shift_div != 4 && p.shift_div != 8) {
        why << "shift_div must be 4 or 8, got " << p.shift_div;
    } else if (p.official_border != 0 && p.official_border != 1) {
        why << "official_border must be 0 or 1, got " << p.official_border;
    } else if (!std::isfinite(p.eps) || !(p.eps > 0.f)) {
        why << "eps must be finite and > 0, got " << p.eps;
    }
    return why.str();
}

// Why these input shapes do not fit the attributes, or "". Extents < 0 (unknown while building)
// are skipped; onShapeChange repeats the check with every extent known.
std::string shapeProblem(Params const& p, Dims const* in, int32_t nbInputs) {
    std::ostringstream why;
    if (nbInputs != kNbInputs) {
        why << "expects " << kNbInputs << " inputs (q, k, v, gate_weight, gate_bias), got " << nbInputs;
        return why.str();
    }
    char const* const names[] = {"q", "k", "v"};
    for (int32_t i = kQ; i <= kV; ++i) {
        if (in[i].nbDims != kRank) {
            why << names[i] << " must be batch x frames x tokens x channels, got " << dimsText(in[i]);
            return why.str();
        }
        for (int32_t a = 0; a < kRank; ++a) {
            if (i != kQ && in[i].d[a] >= 0 && in[kQ].d[a] >= 0 && in[i].d[a] != in[kQ].d[a]) {
                why << names[i] << " " << dimsText(in[i]) << " differs from q " << dimsText(in[kQ]);
                return why.str();
            }
        }
    }
    Dims const& q = in[kQ];
    if (q.d[2] >= 0 && q.d[2] != int64_t{p.tokens()}) {
        why << "q has " << q.d[2] << " tokens per frame but grid = " << p.grid << " needs grid^2 = " << p.tokens();
        return why.str();
    }
    if (q.d[3] >= 0 && q.d[3] != int64_t{p.channels()}) {
        why << "q has " << q.d[3] << " channels but heads * head_dim = " << p.heads << " * " << p.head_dim << " = "
            << p.channels();
        return why.str();
    }
    int64_t const d = p.head_dim;
    Dims const& w = in[kGateWeight];
    Dims const& b = in[kGateBias];
    bool const wOk = w.nbDims == 3 && (w.d[1] < 0 || w.d[1] == d) && (w.d[2] < 0 || w.d[2] == 3 * d);
    bool const bOk = b.nbDims == 2 && (b.d[1] < 0 || b.d[1] == d);
    if (!wOk || !bOk) {
        why << "gate_weight must be n x " << d << " x " << 3 * d << " and gate_bias n x " << d << ", got "
            << dimsText(w) << " and " << dimsText(b);
        return why.str();
    }
    if (p.gate_mode != kGateNone) {
        int64_t const n = p.gates();
        if ((w.d[0] >= 0 && w.d[0] != n) || (b.d[0] >= 0 && b.d[0] != n)) {
            why << "gate_mode " << p.gate_mode << " needs " << n << " gate(s), got gate_weight " << dimsText(w)
                << " and gate_bias " << dimsText(b);
            return why.str();
        }
    }
    return "";
}

// ---- PluginField parsing -------------------------------------------------------------------

bool readInt(PluginField const& f, int32_t& value, std::string& why) {
    if (f.data == nullptr || f.length != 1) {
        why = std::string("field '") + f.name + "' must hold exactly one value";
        return false;
    }
    int64_t v = 0;
    switch (f.type) {
        case PluginFieldType::kINT32: { int32_t x; std::memcpy(&x, f.data, sizeof x); v = x; break; }
        case PluginFieldType::kINT64: { int64_t x; std::memcpy(&x, f.data, sizeof x); v = x; break; }
        case PluginFieldType::kINT16: { int16_t x; std::memcpy(&x, f.data, sizeof x); v = x; break; }
        case PluginFieldType::kINT8: { int8_t x; std::memcpy(&x, f.data, sizeof x); v = x; break; }
        default:
            why = std::string("field '") + f.name + "' must be an integer (INT32), got PluginFieldType " +
                  std::to_string(static_cast<int32_t>(f.type));
            return false;
    }
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        why = std::string("field '") + f.name + "' = " + std::to_string(v) + " does not fit in int32";
        return false;
    }
    value = static_cast<int32_t>(v);
    return true;
}

bool readFloat(PluginField const& f, float& value, std::string& why) {
    if (f.data == nullptr || f.length != 1) {
        why = std::string("field '") + f.name + "' must hold exactly one value";
        return false;
    }
    if (f.type == PluginFieldType::kFLOAT32) {
        std::memcpy(&value, f.data, sizeof value);
    } else if (f.type == PluginFieldType::kFLOAT64) {
        double x;
        std::memcpy(&x, f.data, sizeof x);
        value = static_cast<float>(x);
    } else {
        why = std::string("field '") + f.name + "' must be FLOAT32, got PluginFieldType " +
              std::to_string(static_cast<int32_t>(f.type));
        return false;
    }
    return true;
}

bool isIo(DataType t) { return t == DataType::kFLOAT || t == DataType::kHALF; }

std::string identityOf(Params const& p) {
    std::ostringstream s;
    s << "heads=" << p.heads << ",head_dim=" << p.head_dim << ",axis=" << p.axis << ",grid=" << p.grid
      << ",shift=" << p.shift << ",shift_div=" << p.shift_div << ",gate_mode=" << p.gate_mode
      << ",official_border=" << p.official_border << ",eps=" << p.eps;
    return s.str();
}

// Attributes with no tensor extents: a plugin's creation state.
Params attributesOnly(Params p) {
    p.batch = 0;
    p.frames = 0;
    return p;
}

}  // namespace

// ==== FFLinearAttentionPlugin ================================================================

FFLinearAttentionPlugin::FFLinearAttentionPlugin(std::string name, Params const& attrs)
    : mName(std::move(name)), mParams(attributesOnly(attrs)), mIdentity(identityOf(mParams)),
      mFormatVersion(kFormatVersion) {
    bindSerializedFields();
}

FFLinearAttentionPlugin::FFLinearAttentionPlugin(FFLinearAttentionPlugin const& other)
    : mName(other.mName), mParams(other.mParams), mIdentity(other.mIdentity), mFormatVersion(other.mFormatVersion) {
    bindSerializedFields();  // never share the other object's field pointers
}

void FFLinearAttentionPlugin::bindSerializedFields() {
    mSerializedFields.clear();
    mSerializedFields.reserve(kNbAttributes + 1);
    for (IntAttribute const& a : kIntAttributes) {
        mSerializedFields.emplace_back(a.name, &(mParams.*a.member), PluginFieldType::kINT32, 1);
    }
    mSerializedFields.emplace_back(kEpsName, &mParams.eps, PluginFieldType::kFLOAT32, 1);
    mSerializedFields.emplace_back(kFormatVersionField, &mFormatVersion, PluginFieldType::kINT32, 1);
    mSerialized.nbFields = static_cast<int32_t>(mSerializedFields.size());
    mSerialized.fields = mSerializedFields.data();
}

// ---- IPluginV3 -----------------------------------------------------------------------------

nvinfer1::IPluginCapability* FFLinearAttentionPlugin::getCapabilityInterface(
    nvinfer1::PluginCapabilityType type) noexcept {
    switch (type) {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* FFLinearAttentionPlugin::clone() noexcept {
    return guarded<nvinfer1::IPluginV3*>(mName.c_str(), "clone", nullptr, [&] { return new FFLinearAttentionPlugin(*this); });
}

// ---- IPluginV3OneCore ----------------------------------------------------------------------

nvinfer1::AsciiChar const* FFLinearAttentionPlugin::getPluginName() const noexcept { return kPluginName; }
nvinfer1::AsciiChar const* FFLinearAttentionPlugin::getPluginVersion() const noexcept { return kPluginVersion; }
nvinfer1::AsciiChar const* FFLinearAttentionPlugin::getPluginNamespace() const noexcept { return kPluginNamespace; }

// ---- IPluginV3OneBuild ---------------------------------------------------------------------

int32_t FFLinearAttentionPlugin::getNbOutputs() const noexcept { return kNbOutputs; }

int32_t FFLinearAttentionPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                    DataType const* inputTypes, int32_t nbInputs) const noexcept {
    return guarded(mName.c_str(), "getOutputDataTypes", kFailure, [&] {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || outputTypes == nullptr || inputTypes == nullptr) {
            logError(mName.c_str(), "getOutputDataTypes: expects 5 inputs and 1 output, got " + std::to_string(nbInputs) +
                                " and " + std::to_string(nbOutputs));
            return kFailure;
        }
        if (!isIo(inputTypes[kQ])) {
            logError(mName.c_str(), "q must be float32 or float16, got DataType " +
                                std::to_string(static_cast<int32_t>(inputTypes[kQ])));
            return kFailure;
        }
        outputTypes[0] = inputTypes[kQ];
        return 0;
    });
}

int32_t FFLinearAttentionPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                                 DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                                 DimsExprs* outputs, int32_t nbOutputs,
                                                 nvinfer1::IExprBuilder& exprBuilder) noexcept {
    return guarded(mName.c_str(), "getOutputShapes", kFailure, [&] {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || inputs == nullptr || outputs == nullptr) {
            logError(mName.c_str(), "getOutputShapes: expects 5 inputs and 1 output, got " + std::to_string(nbInputs) +
                                " and " + std::to_string(nbOutputs));
            return kFailure;
        }
        DimsExprs const& q = inputs[kQ];
        if (q.nbDims != kRank) {
            logError(mName.c_str(), "q must be batch x frames x tokens x channels, got rank " + std::to_string(q.nbDims));
            return kFailure;
        }
        // Tokens and channels are fixed by the attributes; batch and frames follow q symbolically.
        int64_t const fixed[2] = {mParams.tokens(), mParams.channels()};
        DimsExprs& out = outputs[0];
        out.nbDims = kRank;
        out.d[0] = q.d[0];
        out.d[1] = q.d[1];
        for (int32_t a = 2; a < kRank; ++a) {
            int64_t const want = fixed[a - 2];
            if (q.d[a]->isConstant() && q.d[a]->getConstantValue() != want) {
                logError(mName.c_str(), std::string("q has ") + std::to_string(q.d[a]->getConstantValue()) +
                                    (a == 2 ? " tokens per frame, grid^2 = " : " channels, heads * head_dim = ") +
                                    std::to_string(want));
                return kFailure;
            }
            out.d[a] = q.d[a]->isConstant() ? q.d[a] : exprBuilder.constant(want);
            if (out.d[a] == nullptr) return kFailure;
        }
        return 0;
    });
}

bool FFLinearAttentionPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                        int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 ||
        pos >= kNbInputs + kNbOutputs) {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR) return false;
    switch (pos) {
        case kQ: return isIo(desc.type);
        case kGateWeight:
        case kGateBias: return desc.type == DataType::kFLOAT;
        default: return desc.type == inOut[kQ].desc.type;  // k, v and the output follow q
    }
}

int32_t FFLinearAttentionPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                                 DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    return guarded(mName.c_str(), "configurePlugin", kFailure, [&] {
        if (in == nullptr || out == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs) {
            logError(mName.c_str(), "configurePlugin: expects 5 inputs and 1 output");
            return kFailure;
        }
        Dims dims[kNbInputs];
        for (int32_t i = 0; i < kNbInputs; ++i) dims[i] = in[i].desc.dims;
        std::string const why = shapeProblem(mParams, dims, nbInputs);
        if (!why.empty()) {
            logError(mName.c_str(), why);
            return kFailure;
        }
        // The kernel must accept the largest shapes of the profile; onShapeChange checks the actual ones.
        Dims const& max = in[kQ].max;
        bool const bounded = max.nbDims == kRank;
        Params p = mParams;
        p.batch = static_cast<int32_t>(bounded && max.d[0] > 0 ? max.d[0] : 1);
        p.frames = static_cast<int32_t>(dims[kQ].d[1] >= 0 ? dims[kQ].d[1] : (bounded ? max.d[1] : -1));
        if (p.frames > 0) {
            if (char const* reason = unsupported(p)) {
                logError(mName.c_str(), std::string("the kernel does not support this node: ") + reason);
                return kFailure;
            }
            mParams.frames = p.frames;
        }
        return 0;
    });
}

size_t FFLinearAttentionPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                                 DynamicPluginTensorDesc const* /*outputs*/,
                                                 int32_t /*nbOutputs*/) const noexcept {
    return guarded(mName.c_str(), "getWorkspaceSize", size_t{0}, [&] {
        if (inputs == nullptr || nbInputs != kNbInputs || inputs[kQ].max.nbDims != kRank) return size_t{0};
        Params p = mParams;  // the profile's largest shapes: enough for every smaller one
        p.batch = static_cast<int32_t>(inputs[kQ].max.d[0]);
        p.frames = static_cast<int32_t>(inputs[kQ].max.d[1]);
        return workspaceBytes(p);
    });
}

char const* FFLinearAttentionPlugin::getTimingCacheID() noexcept { return mIdentity.c_str(); }

char const* FFLinearAttentionPlugin::getMetadataString() noexcept { return mIdentity.c_str(); }

// ---- IPluginV3OneRuntime -------------------------------------------------------------------

int32_t FFLinearAttentionPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs,
                                               PluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    return guarded(mName.c_str(), "onShapeChange", kFailure, [&] {
        if (in == nullptr || out == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs) {
            logError(mName.c_str(), "onShapeChange: expects 5 inputs and 1 output");
            return kFailure;
        }
        Dims dims[kNbInputs];
        for (int32_t i = 0; i < kNbInputs; ++i) dims[i] = in[i].dims;
        std::string why = shapeProblem(mParams, dims, nbInputs);
        if (why.empty() && (dims[kQ].d[0] < 0 || dims[kQ].d[1] < 1)) why = "q has unresolved extents " + dimsText(dims[kQ]);
        if (why.empty() && !isIo(in[kQ].type)) why = "q must be float32 or float16";
        if (!why.empty()) {
            logError(mName.c_str(), why);
            return kFailure;
        }
        Params p = mParams;
        p.batch = static_cast<int32_t>(dims[kQ].d[0]);
        p.frames = static_cast<int32_t>(dims[kQ].d[1]);
        if (char const* reason = p.batch > 0 ? unsupported(p) : nullptr) {
            logError(mName.c_str(), std::string("the kernel does not support q ") + dimsText(dims[kQ]) + ": " + reason);
            return kFailure;
        }
        mParams = p;
        return 0;
    });
}

int32_t FFLinearAttentionPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                         void const* const* inputs, void* const* outputs, void* workspace,
                                         cudaStream_t stream) noexcept {
    return guarded(mName.c_str(), "enqueue", kFailure, [&] {
        if (inputDesc == nullptr || inputs == nullptr || outputs == nullptr) {
            logError(mName.c_str(), "enqueue: missing tensor descriptions or pointers");
            return kFailure;
        }
        Dims const& q = inputDesc[kQ].dims;
        Params p = mParams;
        p.batch = static_cast<int32_t>(q.d[0]);
        p.frames = static_cast<int32_t>(q.d[1]);
        if (q.nbDims != kRank || q.d[2] != p.tokens() || q.d[3] != p.channels() || p.batch < 0 || p.frames < 1) {
            logError(mName.c_str(), "enqueue: q " + dimsText(q) + " does not fit the attributes (" + mIdentity + ")");
            return kFailure;
        }
        if (p.batch == 0) return 0;
        DType const io = inputDesc[kQ].type == DataType::kHALF ? DType::kFloat16 : DType::kFloat32;
        cudaError_t const err =
            launch(p, io, inputs[kQ], inputs[kK], inputs[kV], static_cast<float const*>(inputs[kGateWeight]),
                   static_cast<float const*>(inputs[kGateBias]), outputs[0], workspace, stream);
        if (err != cudaSuccess) {
            logError(mName.c_str(), std::string("enqueue: kernel launch failed for q ") + dimsText(q) + ": " +
                                cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
            return static_cast<int32_t>(err);
        }
        return 0;
    });
}

nvinfer1::IPluginV3* FFLinearAttentionPlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept {
    return clone();  // no per-context resources: scratch memory comes from TensorRT's workspace
}

PluginFieldCollection const* FFLinearAttentionPlugin::getFieldsToSerialize() noexcept { return &mSerialized; }

// ==== FFLinearAttentionPluginCreator =========================================================

FFLinearAttentionPluginCreator::FFLinearAttentionPluginCreator() {
    for (IntAttribute const& a : kIntAttributes) mFields.emplace_back(a.name, nullptr, PluginFieldType::kINT32, 1);
    mFields.emplace_back(kEpsName, nullptr, PluginFieldType::kFLOAT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

nvinfer1::IPluginV3* FFLinearAttentionPluginCreator::createPlugin(nvinfer1::AsciiChar const* name,
                                                                  PluginFieldCollection const* fc,
                                                                  nvinfer1::TensorRTPhase phase) noexcept {
    char const* const where = name ? name : "";
    return guarded<nvinfer1::IPluginV3*>(where, "createPlugin", nullptr, [&]() -> nvinfer1::IPluginV3* {
        if (fc == nullptr || (fc->nbFields > 0 && fc->fields == nullptr) || fc->nbFields < 0) {
            logError(where, "createPlugin: no attribute fields given");
            return nullptr;
        }
        Params p;
        bool seen[kNbAttributes] = {};
        bool seenFormat = false;
        int32_t format = 0;
        std::string why;
        for (int32_t i = 0; i < fc->nbFields && why.empty(); ++i) {
            PluginField const& f = fc->fields[i];
            if (f.name == nullptr) continue;
            bool known = false;
            for (int32_t a = 0; a < kNbAttributes - 1 && !known; ++a) {
                if (std::strcmp(f.name, kIntAttributes[a].name) == 0) {
                    known = true;
                    seen[a] = readInt(f, p.*kIntAttributes[a].member, why);
                }
            }
            if (known) continue;
            if (std::strcmp(f.name, kEpsName) == 0) {
                seen[kNbAttributes - 1] = readFloat(f, p.eps, why);
            } else if (std::strcmp(f.name, kFormatVersionField) == 0) {
                seenFormat = readInt(f, format, why);
            } else {
                logMessage(Severity::kWARNING, where, std::string("ignoring unknown field '") + f.name + "'");
            }
        }
        for (int32_t a = 0; a < kNbAttributes && why.empty(); ++a) {
            if (!seen[a]) {
                why = std::string("missing attribute '") + (a < kNbAttributes - 1 ? kIntAttributes[a].name : kEpsName) +
                      "' (the ONNX node must carry every attribute of plugins/ffla/README.md)";
            }
        }
        if (why.empty() && phase == nvinfer1::TensorRTPhase::kRUNTIME && !seenFormat) {
            why = std::string("the serialised plugin has no '") + kFormatVersionField +
                  "' field: the engine was not built by this plugin library; rebuild the engine";
        }
        if (why.empty() && seenFormat && format != kFormatVersion) {
            why = "the engine was built with plugin field format " + std::to_string(format) + ", this library reads " +
                  std::to_string(kFormatVersion) + "; rebuild the engine with this library";
        }
        if (why.empty()) why = attributeProblem(p);
        if (!why.empty()) {
            logError(where, "createPlugin: " + why);
            return nullptr;
        }
        return new FFLinearAttentionPlugin(where, p);
    });
}

PluginFieldCollection const* FFLinearAttentionPluginCreator::getFieldNames() noexcept { return &mFieldCollection; }

nvinfer1::AsciiChar const* FFLinearAttentionPluginCreator::getPluginName() const noexcept { return kPluginName; }
nvinfer1::AsciiChar const* FFLinearAttentionPluginCreator::getPluginVersion() const noexcept { return kPluginVersion; }
nvinfer1::AsciiChar const* FFLinearAttentionPluginCreator::getPluginNamespace() const noexcept {
    return kPluginNamespace;
}

}  // namespace ffla
}  // namespace lvt_edge

// ==== library entry points ===================================================================

namespace {

lvt_edge::ffla::FFLinearAttentionPluginCreator& creator() {
    static lvt_edge::ffla::FFLinearAttentionPluginCreator instance;
    return instance;
}

#ifdef LVT_EDGE_FFLA_STATIC_REGISTRATION
// For hosts that only dlopen the library (DeepStream custom-lib-path, LD_PRELOAD, Triton): register
// with libnvinfer's global registry at load time, under the namespace the creator reports.
struct StaticRegistration {
    StaticRegistration() noexcept {
        try {
            if (!getPluginRegistry()->registerCreator(creator(), creator().getPluginNamespace())) {
                lvt_edge::ffla::logError("", "could not register the creator (already registered?)");
            }
        } catch (...) {
            lvt_edge::ffla::logError("", "could not construct the plugin creator");
        }
    }
};
StaticRegistration const gStaticRegistration{};
#endif

}  // namespace

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept {
    try {
        static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator()};
        nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
        return creators;
    } catch (...) {
        lvt_edge::ffla::logError("", "getCreators: could not construct the plugin creator");
    }
    nbCreators = 0;
    return nullptr;
}

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
    lvt_edge::ffla::gLoggerFinder.store(finder);
}
