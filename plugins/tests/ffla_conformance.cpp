// Conformance harness for the FFLinearAttention plugin library (liblvt_edge_ffla_trt<MAJOR>.so):
//
//   ffla_conformance build/plugins/liblvt_edge_ffla_trt10.so
//
// Loads the library the way TensorRT's plugin registry does (dlopen, setLoggerFinder,
// getCreators) and calls the creator and the plugin through the IPluginV3 interfaces in the
// order the ONNX parser, the builder and the runtime use them, with stand-ins for what TensorRT
// would pass in (ILoggerFinder, IExprBuilder, IPluginResourceContext). No TensorRT library is
// needed, only its headers. With a GPU (cudaGetDeviceCount through the static CUDA runtime)
// enqueue is compared with a host reference of the equation in plugins/ffla/README.md; without
// one, enqueue has to fail cleanly with a logged error.
#include <NvInferRuntime.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ffla_reference.h"
#include "trt_stand_ins.h"

namespace trt = nvinfer1;
using lvt_edge::ffla_test::Attrs;
using lvt_edge::ffla_test::reference;
using lvt_edge::trt_test::RecordingLogger;
using lvt_edge::trt_test::StandInExprBuilder;
using lvt_edge::trt_test::StandInLoggerFinder;
using lvt_edge::trt_test::StandInResourceContext;
using trt::DataType;
using trt::PluginFieldType;
using trt::TensorFormat;

namespace {

constexpr char const* kName = "FFLinearAttention";
constexpr char const* kVersion = "1";
constexpr char const* kNamespace = "lvt_edge";
constexpr int32_t kNbInputs = 5;
constexpr int32_t kNbIo = 6;
constexpr double kFp32Tolerance = 1e-5;  // plugins/ffla/README.md: the fp32 plugin vs the reference op
constexpr double kFp16Tolerance = 1e-2;  // abs and rel, fp16 I/O vs the fp32 reference on the same inputs

// ---- results ---------------------------------------------------------------------------------

int gPassed = 0;
int gFailed = 0;

bool check(bool ok, std::string const& what) {
    ++(ok ? gPassed : gFailed);
    std::printf("%s %s\n", ok ? "[ ok ]" : "[FAIL]", what.c_str());
    std::fflush(stdout);
    return ok;
}

// ---- fields --------------------------------------------------------------------------------

// A PluginFieldCollection as TensorRT's ONNX parser makes it from the node's attributes.
class Fields {
public:
    explicit Fields(Attrs const& a) {
        setInt("heads", a.heads);
        setInt("head_dim", a.head_dim);
        setInt("axis", a.axis);
        setInt("grid", a.grid);
        setInt("shift", a.shift);
        setInt("shift_div", a.shift_div);
        setInt("gate_mode", a.gate_mode);
        setInt("official_border", a.official_border);
        setFloat("eps", a.eps);
    }
    Fields(Fields const&) = delete;
    Fields& operator=(Fields const&) = delete;

    Fields& setInt(char const* name, int32_t v) { return set(name, &mInts.emplace_back(v), PluginFieldType::kINT32); }
    Fields& setInt64(char const* name, int64_t v) {
        return set(name, &mInt64s.emplace_back(v), PluginFieldType::kINT64);
    }
    Fields& setFloat(char const* name, float v) {
        return set(name, &mFloats.emplace_back(v), PluginFieldType::kFLOAT32);
    }
    Fields& setRaw(char const* name, void const* data, PluginFieldType type, int32_t length) {
        return set(name, data, type, length);
    }
    Fields& drop(char const* name) {
        for (size_t i = 0; i < mFields.size(); ++i) {
            if (std::strcmp(mFields[i].name, name) == 0) mFields.erase(mFields.begin() + static_cast<long>(i));
        }
        return *this;
    }
    trt::PluginFieldCollection const* fc() {
        mFc.nbFields = static_cast<int32_t>(mFields.size());
        mFc.fields = mFields.data();
        return &mFc;
    }

private:
    Fields& set(char const* name, void const* data, PluginFieldType type, int32_t length = 1) {
        drop(name);
        mFields.emplace_back(name, data, type, length);
        return *this;
    }
    std::deque<int32_t> mInts;  // deques: values keep their address as more are added
    std::deque<int64_t> mInt64s;
    std::deque<float> mFloats;
    std::vector<trt::PluginField> mFields;
    trt::PluginFieldCollection mFc{};
};

// ---- the plugin through its capability interfaces --------------------------------------------

struct Plugin {
    std::unique_ptr<trt::IPluginV3> self;
    trt::IPluginV3OneCore* core = nullptr;
    trt::IPluginV3OneBuild* build = nullptr;
    trt::IPluginV3OneRuntime* runtime = nullptr;

    explicit operator bool() const { return self && core && build && runtime; }
};

// As TensorRT does: ask for each capability, check its interface kind, then downcast.
Plugin capabilities(trt::IPluginV3* p) {
    Plugin out;
    out.self.reset(p);
    if (p == nullptr) return out;
    auto kindOf = [](trt::IPluginCapability* c) { return c ? std::string(c->getInterfaceInfo().kind) : std::string(); };
    trt::IPluginCapability* core = p->getCapabilityInterface(trt::PluginCapabilityType::kCORE);
    trt::IPluginCapability* build = p->getCapabilityInterface(trt::PluginCapabilityType::kBUILD);
    trt::IPluginCapability* runtime = p->getCapabilityInterface(trt::PluginCapabilityType::kRUNTIME);
    if (kindOf(core) == "PLUGIN_V3ONE_CORE") out.core = static_cast<trt::IPluginV3OneCore*>(core);
    if (kindOf(build) == "PLUGIN_V3ONE_BUILD") out.build = static_cast<trt::IPluginV3OneBuild*>(build);
    if (kindOf(runtime) == "PLUGIN_V3ONE_RUNTIME") out.runtime = static_cast<trt::IPluginV3OneRuntime*>(runtime);
    return out;
}

trt::Dims dims(std::initializer_list<int64_t> extents) {
    trt::Dims d{};
    d.nbDims = static_cast<int32_t>(extents.size());
    int32_t i = 0;
    for (int64_t e : extents) d.d[i++] = e;
    return d;
}

// Shapes of the five inputs and the output; `batch` -1 is a dynamic batch in [1, maxBatch].
struct Io {
    trt::Dims shape[kNbIo];
    trt::Dims max[kNbIo];
    DataType type = DataType::kFLOAT;

    Io(Attrs const& a, int64_t batch, int64_t maxBatch, int64_t frames, DataType io) : type(io) {
        int64_t const d = a.head_dim;
        shape[0] = shape[1] = shape[2] = shape[5] = dims({batch, frames, a.tokens(), a.channels()});
        shape[3] = dims({a.gates(), d, 3 * d});
        shape[4] = dims({a.gates(), d});
        for (int32_t i = 0; i < kNbIo; ++i) max[i] = shape[i];
        max[0].d[0] = max[1].d[0] = max[2].d[0] = max[5].d[0] = maxBatch;
    }

    DataType typeOf(int32_t i) const { return i == 3 || i == 4 ? DataType::kFLOAT : type; }

    std::vector<trt::DynamicPluginTensorDesc> dynamic() const {
        std::vector<trt::DynamicPluginTensorDesc> out(kNbIo);
        for (int32_t i = 0; i < kNbIo; ++i) {
            out[i].desc.dims = shape[i];
            out[i].desc.type = typeOf(i);
            out[i].desc.format = TensorFormat::kLINEAR;
            out[i].desc.scale = 1.f;
            out[i].min = out[i].opt = out[i].max = max[i];
            if (i < 3 || i == 5) out[i].min.d[0] = 1;
        }
        return out;
    }

    std::vector<trt::PluginTensorDesc> concrete() const {
        std::vector<trt::PluginTensorDesc> out(kNbIo);
        for (int32_t i = 0; i < kNbIo; ++i) {
            out[i].dims = shape[i];
            out[i].type = typeOf(i);
            out[i].format = TensorFormat::kLINEAR;
            out[i].scale = 1.f;
        }
        return out;
    }
};

int32_t configure(Plugin& p, Io const& io) {
    auto d = io.dynamic();
    return p.build->configurePlugin(d.data(), kNbInputs, d.data() + kNbInputs, 1);
}

int32_t shapeChange(Plugin& p, Io const& io) {
    auto d = io.concrete();
    return p.runtime->onShapeChange(d.data(), kNbInputs, d.data() + kNbInputs, 1);
}

// The serialised fields as comparable text: "name:type:length=value".
std::vector<std::string> serialized(Plugin& p) {
    std::vector<std::string> out;
    trt::PluginFieldCollection const* fc = p.runtime->getFieldsToSerialize();
    if (fc == nullptr) return out;
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        trt::PluginField const& f = fc->fields[i];
        std::string value = "?";
        if (f.data && f.type == PluginFieldType::kINT32) value = std::to_string(*static_cast<int32_t const*>(f.data));
        if (f.data && f.type == PluginFieldType::kFLOAT32) value = std::to_string(*static_cast<float const*>(f.data));
        out.push_back(std::string(f.name ? f.name : "<null>") + ":" + std::to_string(static_cast<int32_t>(f.type)) +
                      ":" + std::to_string(f.length) + "=" + value);
    }
    return out;
}

std::string joined(std::vector<std::string> const& parts) {
    std::string s;
    for (auto const& p : parts) s += (s.empty() ? "" : " ") + p;
    return s;
}

// ---- the library -----------------------------------------------------------------------------

using GetCreators = trt::IPluginCreatorInterface* const* (*)(int32_t&);
using SetLoggerFinder = void (*)(trt::ILoggerFinder*);

struct Context {
    RecordingLogger logger;
    StandInLoggerFinder finder{&logger};
    trt::IPluginCreatorV3One* creator = nullptr;
    SetLoggerFinder setLoggerFinder = nullptr;

    Plugin create(Fields& f, trt::TensorRTPhase phase = trt::TensorRTPhase::kBUILD, char const* name = "ffla_node") {
        return capabilities(creator->createPlugin(name, f.fc(), phase));
    }
    // Expects `failed` plus an error in the log since `mark`.
    void expectRejected(size_t mark, bool failed, std::string const& what) {
        std::string const error = logger.errorSince(mark);
        check(failed && !error.empty(), what + (error.empty() ? " (no error logged)" : " -> logged: " + error));
    }
};

void testLibrary(Context& cx, void* lib) {
    auto* get = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    cx.setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(lib, "setLoggerFinder"));
    check(get != nullptr, "exports getCreators");
    check(cx.setLoggerFinder != nullptr, "exports setLoggerFinder");
    // The export list itself is checked from the symbol table by the ffla_exports test.
    for (char const* internal : {"cudaGetErrorString", "cudaLaunchKernel", "__cudaRegisterFatBinary",
                                 "_ZTVN8lvt_edge4ffla23FFLinearAttentionPluginE"}) {
        check(dlsym(lib, internal) == nullptr, std::string("does not export ") + internal);
    }
    if (get == nullptr || cx.setLoggerFinder == nullptr) return;

    cx.setLoggerFinder(&cx.finder);  // TensorRT passes its finder before asking for creators
    int32_t n = -1;
    trt::IPluginCreatorInterface* const* creators = get(n);
    if (!check(creators != nullptr && n == 1, "getCreators returns one creator (got " + std::to_string(n) + ")")) {
        return;
    }
    trt::InterfaceInfo const info = creators[0]->getInterfaceInfo();
    if (check(std::string(info.kind) == "PLUGIN CREATOR_V3ONE" && info.major == 1,
              std::string("the creator is an IPluginCreatorV3One (kind '") + info.kind + "')")) {
        cx.creator = static_cast<trt::IPluginCreatorV3One*>(creators[0]);
    }
}

void testCreator(Context& cx) {
    trt::IPluginCreatorV3One& c = *cx.creator;
    check(std::string(c.getPluginName()) == kName && std::string(c.getPluginVersion()) == kVersion &&
              std::string(c.getPluginNamespace()) == kNamespace,
          std::string("creator is ") + c.getPluginNamespace() + "::" + c.getPluginName() + " v" + c.getPluginVersion());

    struct Expected {
        char const* name;
        PluginFieldType type;
    };
    Expected const expected[] = {{"heads", PluginFieldType::kINT32},     {"head_dim", PluginFieldType::kINT32},
                                 {"axis", PluginFieldType::kINT32},      {"grid", PluginFieldType::kINT32},
                                 {"shift", PluginFieldType::kINT32},     {"shift_div", PluginFieldType::kINT32},
                                 {"gate_mode", PluginFieldType::kINT32}, {"official_border", PluginFieldType::kINT32},
                                 {"eps", PluginFieldType::kFLOAT32}};
    trt::PluginFieldCollection const* fields = c.getFieldNames();
    bool ok = fields != nullptr && fields->nbFields == 9;
    std::string seen;
    for (int32_t i = 0; ok && i < fields->nbFields; ++i) {
        seen += std::string(seen.empty() ? "" : " ") + fields->fields[i].name;
        bool found = false;
        for (Expected const& e : expected) {
            found = found || (std::strcmp(e.name, fields->fields[i].name) == 0 && e.type == fields->fields[i].type);
        }
        ok = ok && found;
    }
    check(ok, "creator declares the node's attributes with the parser's types: " + seen);
}

void testCreatePlugin(Context& cx) {
    Attrs const a;
    for (auto phase : {trt::TensorRTPhase::kBUILD, trt::TensorRTPhase::kRUNTIME}) {
        Fields f(a);
        if (phase == trt::TensorRTPhase::kRUNTIME) f.setInt("format_version", 1);
        Plugin p = cx.create(f, phase);
        std::string const which = phase == trt::TensorRTPhase::kBUILD ? "kBUILD" : "kRUNTIME";
        if (!check(bool(p), "createPlugin(" + which + ") gives a plugin with core, build and runtime capabilities")) {
            continue;
        }
        check(std::string(p.self->getInterfaceInfo().kind) == "PLUGIN" && p.self->getInterfaceInfo().major == 1,
              "the plugin is an IPluginV3 (" + which + ")");
        check(std::string(p.core->getPluginName()) == kName && std::string(p.core->getPluginVersion()) == kVersion &&
                  std::string(p.core->getPluginNamespace()) == kNamespace,
              "plugin name, version and namespace match the creator (" + which + ")");
        check(p.self->getCapabilityInterface(static_cast<trt::PluginCapabilityType>(7)) == nullptr,
              "an unknown capability type gives nullptr (" + which + ")");
    }
    Fields wide(a);  // Python callers build fields from numpy int64 / float64
    wide.setInt64("heads", a.heads).setInt64("grid", a.grid);
    check(bool(cx.create(wide)), "createPlugin accepts int64 integer fields");
    Fields unnamed(a);
    check(bool(capabilities(cx.creator->createPlugin(nullptr, unnamed.fc(), trt::TensorRTPhase::kBUILD))),
          "createPlugin accepts a null layer name");
}

void testBadAttributes(Context& cx) {
    Attrs const a;
    struct Case {
        char const* what;
        void (*edit)(Fields&);
    };
    static float const nan = std::numeric_limits<float>::quiet_NaN();
    static int32_t const twoValues[2] = {1, 2};
    Case const cases[] = {
        {"unknown axis 2", [](Fields& f) { f.setInt("axis", 2); }},
        {"missing field 'grid'", [](Fields& f) { f.drop("grid"); }},
        {"missing field 'eps'", [](Fields& f) { f.drop("eps"); }},
        {"shift_div 3", [](Fields& f) { f.setInt("shift_div", 3); }},
        {"unknown gate_mode 3", [](Fields& f) { f.setInt("gate_mode", 3); }},
        {"heads 0", [](Fields& f) { f.setInt("heads", 0); }},
        {"head_dim -4", [](Fields& f) { f.setInt("head_dim", -4); }},
        {"heads * head_dim overflowing int32", [](Fields& f) { f.setInt("heads", 1 << 16).setInt("head_dim", 1 << 16); }},
        {"grid 0", [](Fields& f) { f.setInt("grid", 0); }},
        {"shift 2", [](Fields& f) { f.setInt("shift", 2); }},
        {"official_border -1", [](Fields& f) { f.setInt("official_border", -1); }},
        {"eps NaN", [](Fields& f) { f.setFloat("eps", nan); }},
        {"eps 0", [](Fields& f) { f.setFloat("eps", 0.f); }},
        {"eps -1e-6", [](Fields& f) { f.setFloat("eps", -1e-6f); }},
        {"eps given as INT32", [](Fields& f) { f.drop("eps").setInt("eps", 1); }},
        {"heads given as FLOAT32", [](Fields& f) { f.drop("heads").setFloat("heads", 2.f); }},
        {"heads with two values", [](Fields& f) { f.setRaw("heads", twoValues, PluginFieldType::kINT32, 2); }},
        {"heads with no data", [](Fields& f) { f.setRaw("heads", nullptr, PluginFieldType::kINT32, 1); }},
        {"int64 heads beyond int32", [](Fields& f) { f.setInt64("heads", int64_t{1} << 40); }},
    };
    for (Case const& c : cases) {
        Fields f(a);
        c.edit(f);
        size_t const mark = cx.logger.mark();
        Plugin p = cx.create(f);
        cx.expectRejected(mark, !p.self, std::string("createPlugin rejects ") + c.what);
    }
    size_t mark = cx.logger.mark();
    cx.expectRejected(mark, cx.creator->createPlugin("x", nullptr, trt::TensorRTPhase::kBUILD) == nullptr,
                      "createPlugin rejects a null field collection");

    // Deserialising: an engine's fields must carry this library's format version.
    Fields noVersion(a);
    mark = cx.logger.mark();
    cx.expectRejected(mark, !cx.create(noVersion, trt::TensorRTPhase::kRUNTIME).self,
                      "createPlugin(kRUNTIME) rejects fields without format_version");
    Fields future(a);
    future.setInt("format_version", 2);
    mark = cx.logger.mark();
    cx.expectRejected(mark, !cx.create(future, trt::TensorRTPhase::kRUNTIME).self,
                      "createPlugin(kRUNTIME) rejects format_version 2");

    // Without a logger finder the library must still refuse, not crash (it writes to stderr).
    cx.setLoggerFinder(nullptr);
    Fields bad(a);
    bad.setInt("axis", 5);
    bool const refused = !cx.create(bad).self;
    cx.setLoggerFinder(&cx.finder);
    check(refused, "createPlugin refuses bad attributes with no logger finder set");
}

void testBuildPhase(Context& cx) {
    Attrs const a;
    Fields f(a);
    Plugin p = cx.create(f);
    if (!p) return;
    trt::IPluginV3OneBuild& b = *p.build;
    check(b.getNbOutputs() == 1, "getNbOutputs is 1");

    // Output type follows q.
    for (DataType t : {DataType::kFLOAT, DataType::kHALF}) {
        DataType in[kNbInputs] = {t, t, t, DataType::kFLOAT, DataType::kFLOAT};
        DataType out = DataType::kINT32;
        int32_t const rc = b.getOutputDataTypes(&out, 1, in, kNbInputs);
        check(rc == 0 && out == t, std::string("getOutputDataTypes: ") + (t == DataType::kFLOAT ? "fp32" : "fp16") +
                                       " q gives the same output type");
    }
    {
        DataType in[kNbInputs] = {DataType::kINT8, DataType::kINT8, DataType::kINT8, DataType::kFLOAT, DataType::kFLOAT};
        DataType out = DataType::kFLOAT;
        size_t mark = cx.logger.mark();
        cx.expectRejected(mark, b.getOutputDataTypes(&out, 1, in, kNbInputs) != 0,
                          "getOutputDataTypes rejects int8 q");
        mark = cx.logger.mark();
        cx.expectRejected(mark, b.getOutputDataTypes(&out, 1, in, 3) != 0, "getOutputDataTypes rejects 3 inputs");
    }

    // Output shape: batch and frames follow q symbolically, tokens and channels from the attributes.
    {
        StandInExprBuilder eb;
        auto shapes = [&](trt::IDimensionExpr const* s, trt::IDimensionExpr const* c) {
            std::vector<trt::DimsExprs> in(kNbInputs);
            for (int32_t i = 0; i < 3; ++i) {
                in[i].nbDims = 4;
                in[i].d[0] = eb.symbol("B");
                in[i].d[1] = eb.value(5);
                in[i].d[2] = s;
                in[i].d[3] = c;
            }
            in[3].nbDims = 3;
            in[3].d[0] = eb.value(1);
            in[3].d[1] = eb.value(a.head_dim);
            in[3].d[2] = eb.value(3 * a.head_dim);
            in[4].nbDims = 2;
            in[4].d[0] = eb.value(1);
            in[4].d[1] = eb.value(a.head_dim);
            return in;
        };
        auto in = shapes(eb.value(a.tokens()), eb.value(a.channels()));
        trt::DimsExprs out{};
        int32_t rc = b.getOutputShapes(in.data(), kNbInputs, nullptr, 0, &out, 1, eb);
        bool ok = rc == 0 && out.nbDims == 4 && out.d[0] == in[0].d[0] && !out.d[0]->isConstant() &&
                  out.d[1]->isConstant() && out.d[1]->getConstantValue() == 5 && out.d[2]->isConstant() &&
                  out.d[2]->getConstantValue() == a.tokens() && out.d[3]->isConstant() &&
                  out.d[3]->getConstantValue() == a.channels();
        check(ok, "getOutputShapes: B x 5 x 9 x 32 with a symbolic batch gives the same shape, batch still symbolic");

        in = shapes(eb.symbol("S"), eb.symbol("C"));
        out = trt::DimsExprs{};
        rc = b.getOutputShapes(in.data(), kNbInputs, nullptr, 0, &out, 1, eb);
        ok = rc == 0 && out.nbDims == 4 && out.d[0] == in[0].d[0] && out.d[2]->isConstant() &&
             out.d[2]->getConstantValue() == a.tokens() && out.d[3]->isConstant() &&
             out.d[3]->getConstantValue() == a.channels();
        check(ok, "getOutputShapes: symbolic tokens/channels become grid^2 and heads * head_dim");

        in = shapes(eb.value(a.tokens()), eb.value(a.channels() + 16));
        size_t const mark = cx.logger.mark();
        cx.expectRejected(mark, b.getOutputShapes(in.data(), kNbInputs, nullptr, 0, &out, 1, eb) != 0,
                          "getOutputShapes rejects q with 48 channels for heads * head_dim = 32");
    }

    // supportsFormatCombination, all type combinations of the six tensors: TensorRT accepts a
    // combination when every position is accepted given the ones before it.
    {
        DataType const types[] = {DataType::kFLOAT, DataType::kHALF, DataType::kINT8, DataType::kBF16};
        int32_t const nbTypes = 4;
        int32_t combos = 0;
        int32_t accepted = 0;
        int32_t wrong = 0;
        std::vector<trt::DynamicPluginTensorDesc> io(kNbIo);
        for (int32_t code = 0; code < nbTypes * nbTypes * nbTypes * nbTypes * nbTypes * nbTypes; ++code) {
            int32_t rest = code;
            for (int32_t i = 0; i < kNbIo; ++i, rest /= nbTypes) {
                io[i] = trt::DynamicPluginTensorDesc{};
                io[i].desc.type = types[rest % nbTypes];
                io[i].desc.format = TensorFormat::kLINEAR;
            }
            bool all = true;
            for (int32_t pos = 0; pos < kNbIo && all; ++pos) all = b.supportsFormatCombination(pos, io.data(), kNbInputs, 1);
            DataType const t = io[0].desc.type;
            bool const expected = (t == DataType::kFLOAT || t == DataType::kHALF) && io[1].desc.type == t &&
                                  io[2].desc.type == t && io[5].desc.type == t &&
                                  io[3].desc.type == DataType::kFLOAT && io[4].desc.type == DataType::kFLOAT;
            ++combos;
            accepted += all;
            wrong += all != expected;
        }
        check(wrong == 0 && accepted == 2, "supportsFormatCombination over " + std::to_string(combos) +
                                               " type combinations: accepts exactly fp32 and fp16 I/O with fp32 "
                                               "gates (accepted " + std::to_string(accepted) + ", wrong " +
                                               std::to_string(wrong) + ")");

        TensorFormat const formats[] = {TensorFormat::kLINEAR, TensorFormat::kCHW32, TensorFormat::kHWC8};
        accepted = 0;
        combos = 0;
        for (int32_t code = 0; code < 3 * 3 * 3 * 3 * 3 * 3; ++code) {
            int32_t rest = code;
            for (int32_t i = 0; i < kNbIo; ++i, rest /= 3) {
                io[i] = trt::DynamicPluginTensorDesc{};
                io[i].desc.type = i == 3 || i == 4 ? DataType::kFLOAT : DataType::kHALF;
                io[i].desc.format = formats[rest % 3];
            }
            bool all = true;
            for (int32_t pos = 0; pos < kNbIo && all; ++pos) all = b.supportsFormatCombination(pos, io.data(), kNbInputs, 1);
            ++combos;
            accepted += all;
        }
        check(accepted == 1, "supportsFormatCombination over " + std::to_string(combos) +
                                 " format combinations: accepts only all-linear (accepted " + std::to_string(accepted) +
                                 ")");
        io.assign(kNbIo, trt::DynamicPluginTensorDesc{});
        for (auto& d : io) d.desc.format = TensorFormat::kLINEAR;
        check(!b.supportsFormatCombination(6, io.data(), kNbInputs, 1) &&
                  !b.supportsFormatCombination(-1, io.data(), kNbInputs, 1) &&
                  !b.supportsFormatCombination(0, io.data(), 4, 1),
              "supportsFormatCombination refuses positions out of range and a wrong input count");
    }

    // configurePlugin with a dynamic batch, then shapes that contradict the attributes.
    check(configure(p, Io(a, -1, 8, 5, DataType::kFLOAT)) == 0, "configurePlugin: dynamic batch [1, 8] x 5 x 9 x 32");
    check(configure(p, Io(a, -1, 8, 5, DataType::kHALF)) == 0, "configurePlugin: fp16, dynamic batch");
    struct Bad {
        char const* what;
        void (*edit)(Io&);
    };
    Bad const bad[] = {
        {"q with 48 channels for heads * head_dim = 32", [](Io& io) { io.shape[0].d[3] = io.max[0].d[3] = 48; }},
        {"all of q, k, v with 48 channels for heads * head_dim = 32",
         [](Io& io) { for (int i : {0, 1, 2, 5}) io.shape[i].d[3] = io.max[i].d[3] = 48; }},
        {"10 tokens per frame for grid 3", [](Io& io) { for (int i : {0, 1, 2, 5}) io.shape[i].d[2] = 10; }},
        {"k with other frames than q", [](Io& io) { io.shape[1].d[1] = 6; }},
        {"q of rank 3", [](Io& io) { io.shape[0] = dims({-1, 45, 32}); }},
        {"gate_weight 1 x 8 x 48 for head_dim 16", [](Io& io) { io.shape[3] = dims({1, 8, 48}); }},
        {"gate_bias of rank 1", [](Io& io) { io.shape[4] = dims({16}); }},
    };
    for (Bad const& c : bad) {
        Io io(a, -1, 8, 5, DataType::kFLOAT);
        c.edit(io);
        size_t const mark = cx.logger.mark();
        cx.expectRejected(mark, configure(p, io) != 0, std::string("configurePlugin rejects ") + c.what);
    }
    {
        Attrs separate = a;
        separate.gate_mode = 2;
        Fields fs(separate);
        Plugin ps = cx.create(fs);
        Io io(a, -1, 8, 5, DataType::kFLOAT);  // one gate where gate_mode 2 needs two
        size_t const mark = cx.logger.mark();
        cx.expectRejected(mark, ps && configure(ps, io) != 0, "configurePlugin rejects one gate for gate_mode 2");
        check(ps && configure(ps, Io(separate, -1, 8, 5, DataType::kFLOAT)) == 0,
              "configurePlugin accepts two gates for gate_mode 2");
    }
    {
        Attrs ungated = a;
        ungated.gate_mode = 0;
        Fields fu(ungated);
        Plugin pu = cx.create(fu);
        check(pu && configure(pu, Io(ungated, -1, 8, 5, DataType::kFLOAT)) == 0,
              "configurePlugin accepts 1 x d x 3d zero gates for gate_mode 0");
    }
    {
        Attrs huge = a;  // valid attributes the kernel cannot run: kv would be 4096 x 4096 fp32
        huge.heads = 1;
        huge.head_dim = 4096;
        Fields fh(huge);
        Plugin ph = cx.create(fh);
        size_t const mark = cx.logger.mark();
        cx.expectRejected(mark, ph && configure(ph, Io(huge, -1, 1, 2, DataType::kFLOAT)) != 0,
                          "configurePlugin rejects head_dim 4096 (the kernel's unsupported())");
    }

    // Workspace for the profile's largest batch: must cover smaller ones.
    {
        auto one = Io(a, -1, 1, 5, DataType::kFLOAT).dynamic();
        auto eight = Io(a, -1, 8, 5, DataType::kFLOAT).dynamic();
        size_t const w1 = b.getWorkspaceSize(one.data(), kNbInputs, one.data() + kNbInputs, 1);
        size_t const w8 = b.getWorkspaceSize(eight.data(), kNbInputs, eight.data() + kNbInputs, 1);
        check(w8 >= w1, "getWorkspaceSize: " + std::to_string(w1) + " B for max batch 1, " + std::to_string(w8) +
                            " B for max batch 8");
        check(b.getWorkspaceSize(one.data(), 2, one.data() + kNbInputs, 1) == 0,
              "getWorkspaceSize with a wrong input count is 0, not a crash");
    }
    char const* id = b.getTimingCacheID();
    check(id != nullptr && std::string(id).find("heads=2") != std::string::npos,
          std::string("getTimingCacheID names the attributes: ") + (id ? id : "<null>"));
}

void testRuntimePhase(Context& cx) {
    Attrs const a;
    Fields f(a);
    Plugin built = cx.create(f);
    if (!built) return;
    check(configure(built, Io(a, -1, 8, 5, DataType::kFLOAT)) == 0, "build: configurePlugin");

    // Serialise, then deserialise as the runtime does.
    std::vector<std::string> const fields = serialized(built);
    check(fields.size() == 10 && joined(fields).find("format_version:5:1=1") != std::string::npos,
          "getFieldsToSerialize: the 9 attributes and format_version = 1: " + joined(fields));
    Plugin loaded = capabilities(
        cx.creator->createPlugin("ffla_node", built.runtime->getFieldsToSerialize(), trt::TensorRTPhase::kRUNTIME));
    if (!check(bool(loaded), "createPlugin(kRUNTIME) from getFieldsToSerialize")) return;
    check(serialized(loaded) == fields && std::string(loaded.build->getTimingCacheID()) == built.build->getTimingCacheID(),
          "the round trip gives an equal plugin (same fields, same timing-cache ID)");
    {
        Attrs other = a;
        other.axis = 1;
        other.shift_div = 8;
        other.gate_mode = 2;
        other.official_border = 1;
        other.eps = 1e-5f;
        Fields fo(other);
        Plugin po = cx.create(fo);
        Plugin back = po ? capabilities(cx.creator->createPlugin("n", po.runtime->getFieldsToSerialize(),
                                                                 trt::TensorRTPhase::kRUNTIME))
                         : Plugin{};
        check(back && serialized(back) == serialized(po) && serialized(po) != fields,
              "a round trip keeps non-default attributes: " + (po ? joined(serialized(po)) : std::string("-")));
    }

    check(shapeChange(loaded, Io(a, 3, 3, 5, DataType::kFLOAT)) == 0, "onShapeChange: 3 x 5 x 9 x 32 fp32");
    check(shapeChange(loaded, Io(a, 1, 1, 7, DataType::kHALF)) == 0, "onShapeChange: 1 x 7 x 9 x 32 fp16");
    {
        Io io(a, 2, 2, 5, DataType::kFLOAT);
        for (int i : {0, 1, 2, 5}) io.shape[i].d[3] = 64;
        size_t const mark = cx.logger.mark();
        cx.expectRejected(mark, shapeChange(loaded, io) != 0,
                          "onShapeChange rejects 64 channels for heads * head_dim = 32");
        Io unresolved(a, -1, 2, 5, DataType::kFLOAT);
        size_t const mark2 = cx.logger.mark();
        cx.expectRejected(mark2, shapeChange(loaded, unresolved) != 0, "onShapeChange rejects an unresolved batch");
    }

    // clone(): a deep copy that outlives its original.
    trt::IPluginV3* cloned = built.self->clone();
    Plugin copy = capabilities(cloned);
    if (!check(bool(copy), "clone() gives a plugin with all capabilities")) return;
    check(copy.runtime->getFieldsToSerialize()->fields != built.runtime->getFieldsToSerialize()->fields &&
              copy.runtime->getFieldsToSerialize()->fields[0].data != built.runtime->getFieldsToSerialize()->fields[0].data,
          "the clone's serialised fields are its own storage");
    built.self.reset();  // destroy the original, as the parser destroys its instance
    check(serialized(copy) == fields, "after the original is destroyed the clone still serialises the same fields");
    check(configure(copy, Io(a, -1, 4, 5, DataType::kFLOAT)) == 0 && shapeChange(copy, Io(a, 2, 2, 5, DataType::kFLOAT)) == 0,
          "after the original is destroyed the clone still configures");

    StandInResourceContext context;
    Plugin attached = capabilities(copy.runtime->attachToContext(&context));
    if (!check(bool(attached), "attachToContext gives a new plugin with all capabilities")) return;
    check(attached.self.get() != copy.self.get(), "attachToContext returns a new object");
    copy.self.reset();
    check(serialized(attached) == fields && shapeChange(attached, Io(a, 2, 2, 5, DataType::kFLOAT)) == 0,
          "the attached plugin works after the plugin it came from is destroyed");
}


// ---- enqueue ---------------------------------------------------------------------------------

// A runtime plugin as an engine gets it: built, serialised, deserialised, attached, shaped.
Plugin runtimePlugin(Context& cx, Attrs const& a, Io const& io, StandInResourceContext& context) {
    Fields f(a);
    Plugin built = cx.create(f);
    if (!built || configure(built, io) != 0) return Plugin{};
    Plugin loaded = capabilities(
        cx.creator->createPlugin("ffla_node", built.runtime->getFieldsToSerialize(), trt::TensorRTPhase::kRUNTIME));
    if (!loaded) return Plugin{};
    Plugin attached = capabilities(loaded.runtime->attachToContext(&context));
    if (!attached || shapeChange(attached, io) != 0) return Plugin{};
    return attached;
}

void testEnqueueWithoutGpu(Context& cx) {
    Attrs const a;
    Io const io(a, 2, 2, 5, DataType::kFLOAT);
    StandInResourceContext context;
    Plugin p = runtimePlugin(cx, a, io, context);
    if (!check(bool(p), "runtime plugin for enqueue")) return;
    size_t const n = size_t(2) * 5 * a.tokens() * a.channels();
    std::vector<float> q(n), k(n), v(n), out(n), gw(size_t(a.head_dim) * 3 * a.head_dim), gb(a.head_dim);
    std::vector<char> workspace(4096);
    void const* inputs[kNbInputs] = {q.data(), k.data(), v.data(), gw.data(), gb.data()};
    void* outputs[1] = {out.data()};
    auto d = io.concrete();
    size_t const mark = cx.logger.mark();
    int32_t const rc = p.runtime->enqueue(d.data(), d.data() + kNbInputs, inputs, outputs, workspace.data(), nullptr);
    cx.expectRejected(mark, rc != 0, "enqueue without a usable GPU fails cleanly (returned " + std::to_string(rc) + ")");
}

template <class T>
T* deviceCopy(std::vector<T> const& host) {
    void* p = nullptr;
    if (cudaMalloc(&p, host.size() * sizeof(T) + 1) != cudaSuccess) return nullptr;
    cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
    return static_cast<T*>(p);
}

struct GpuCase {
    char const* what;
    Attrs a;
    int batch;
    int frames;
    DataType io;
};

void testEnqueueOnGpu(Context& cx, GpuCase const& c, uint32_t seed, bool time) {
    Attrs const& a = c.a;
    Io const io(a, c.batch, c.batch, c.frames, c.io);
    StandInResourceContext context;
    Plugin p = runtimePlugin(cx, a, io, context);
    if (!check(bool(p), std::string("runtime plugin for ") + c.what)) return;

    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    size_t const n = size_t(c.batch) * c.frames * a.tokens() * a.channels();
    bool const half = c.io == DataType::kHALF;
    auto randomTensor = [&](size_t count, float scale, bool io) {
        std::vector<float> x(count);
        for (float& e : x) e = scale * normal(rng);
        if (io && half) {
            for (float& e : x) e = __half2float(__float2half_rn(e));  // the reference sees what the GPU sees
        }
        return x;
    };
    std::vector<float> const q = randomTensor(n, 1.f, true);
    std::vector<float> const k = randomTensor(n, 1.f, true);
    std::vector<float> const v = randomTensor(n, 1.f, true);
    std::vector<float> const gw =
        randomTensor(size_t(a.gates()) * a.head_dim * 3 * a.head_dim, 1.f / std::sqrt(3.f * a.head_dim), false);
    std::vector<float> const gb = randomTensor(size_t(a.gates()) * a.head_dim, 0.5f, false);

    auto dq = io.dynamic();
    size_t const wsBytes = p.build->getWorkspaceSize(dq.data(), kNbInputs, dq.data() + kNbInputs, 1);
    void* ws = nullptr;
    void* dIn[3] = {};
    void* dOut = nullptr;
    float* dGw = deviceCopy(gw);
    float* dGb = deviceCopy(gb);
    bool ok = dGw && dGb && cudaMalloc(&ws, wsBytes + 1) == cudaSuccess;
    std::vector<float> const* hostIn[3] = {&q, &k, &v};
    for (int i = 0; i < 3 && ok; ++i) {
        if (half) {
            std::vector<__half> h(n);
            for (size_t e = 0; e < n; ++e) h[e] = __float2half_rn((*hostIn[i])[e]);
            dIn[i] = deviceCopy(h);
        } else {
            dIn[i] = deviceCopy(*hostIn[i]);
        }
        ok = dIn[i] != nullptr;
    }
    size_t const elementBytes = half ? 2 : 4;
    ok = ok && cudaMalloc(&dOut, n * elementBytes) == cudaSuccess && cudaMemset(dOut, 0xff, n * elementBytes) == cudaSuccess;
    if (!check(ok, std::string("device buffers for ") + c.what)) return;

    auto d = io.concrete();
    void const* inputs[kNbInputs] = {dIn[0], dIn[1], dIn[2], dGw, dGb};
    void* outputs[1] = {dOut};
    size_t const mark = cx.logger.mark();
    int32_t rc = p.runtime->enqueue(d.data(), d.data() + kNbInputs, inputs, outputs, ws, nullptr);
    cudaError_t const sync = cudaDeviceSynchronize();
    std::string const error = cx.logger.errorSince(mark);
    if (!check(rc == 0 && sync == cudaSuccess, std::string("enqueue ") + c.what + " (rc " + std::to_string(rc) + ", " +
                                                   cudaGetErrorName(sync) + (error.empty() ? "" : ", " + error) + ")")) {
        return;
    }

    std::vector<float> got(n);
    if (half) {
        std::vector<__half> h(n);
        cudaMemcpy(h.data(), dOut, n * 2, cudaMemcpyDeviceToHost);
        for (size_t e = 0; e < n; ++e) got[e] = __half2float(h[e]);
    } else {
        cudaMemcpy(got.data(), dOut, n * 4, cudaMemcpyDeviceToHost);
    }
    std::vector<float> const want = reference(a, c.batch, c.frames, q, k, v, gw, gb);
    double maxAbs = 0.0, worstExcess = 0.0;
    for (size_t e = 0; e < n; ++e) {
        double const diff = std::fabs(double(got[e]) - double(want[e]));
        if (!(diff == diff)) maxAbs = std::numeric_limits<double>::infinity();
        maxAbs = std::max(maxAbs, diff);
        double const allowed = half ? kFp16Tolerance * (1.0 + std::fabs(want[e])) : kFp32Tolerance;
        worstExcess = std::max(worstExcess, diff - allowed);
    }
    char text[160];
    std::snprintf(text, sizeof text, "%s matches the host reference: max |diff| %.3g (tolerance %s)", c.what, maxAbs,
                  half ? "1e-2 abs + 1e-2 rel" : "1e-5 abs");
    check(maxAbs == maxAbs && worstExcess <= 0.0 && std::isfinite(maxAbs), text);

    if (time) {
        cudaEvent_t start, stop;
        cudaEventCreate(&start);
        cudaEventCreate(&stop);
        for (int i = 0; i < 3; ++i) p.runtime->enqueue(d.data(), d.data() + kNbInputs, inputs, outputs, ws, nullptr);
        int const reps = 20;
        cudaEventRecord(start, nullptr);
        for (int i = 0; i < reps; ++i) rc |= p.runtime->enqueue(d.data(), d.data() + kNbInputs, inputs, outputs, ws, nullptr);
        cudaEventRecord(stop, nullptr);
        cudaEventSynchronize(stop);
        float ms = 0.f;
        cudaEventElapsedTime(&ms, start, stop);
        std::printf("       time: %s %.1f us per enqueue (mean of %d)\n", c.what, 1000.0 * ms / reps, reps);
        cudaEventDestroy(start);
        cudaEventDestroy(stop);
    }

    // A zero batch is a no-op, not an error.
    Io const empty(a, 0, 1, c.frames, c.io);
    auto de = empty.concrete();
    check(shapeChange(p, empty) == 0 &&
              p.runtime->enqueue(de.data(), de.data() + kNbInputs, inputs, outputs, ws, nullptr) == 0,
          std::string("batch 0 enqueues as a no-op (") + c.what + ")");

    for (void* ptr : {static_cast<void*>(dGw), static_cast<void*>(dGb), ws, dIn[0], dIn[1], dIn[2], dOut}) cudaFree(ptr);
}

void testEnqueue(Context& cx) {
    int devices = 0;
    cudaError_t const err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
        std::printf("       no GPU (cudaGetDeviceCount: %s, %d devices): enqueue must fail cleanly\n",
                    cudaGetErrorName(err), devices);
        testEnqueueWithoutGpu(cx);
        return;
    }
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, 0);
    std::printf("       GPU: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

    auto attrs = [](int heads, int headDim, int axis, int grid, int shift, int shiftDiv, int gate, int border) {
        Attrs a;
        a.heads = heads;
        a.head_dim = headDim;
        a.axis = axis;
        a.grid = grid;
        a.shift = shift;
        a.shift_div = shiftDiv;
        a.gate_mode = gate;
        a.official_border = border;
        return a;
    };
    GpuCase const cases[] = {
        {"fp32 temporal, shared gate, 2 x 4 x 3^2 x (2 x 16)", attrs(2, 16, 0, 3, 1, 4, 1, 0), 2, 4, DataType::kFLOAT},
        {"fp32 spatial, separate gates, 1 x 3 x 4^2 x (2 x 8)", attrs(2, 8, 1, 4, 1, 4, 2, 0), 1, 3, DataType::kFLOAT},
        {"fp32 temporal, official border, no gate, 1 x 8 x 5^2 x (4 x 32)", attrs(4, 32, 0, 5, 1, 4, 0, 1), 1, 8,
         DataType::kFLOAT},
        {"fp32 spatial, shift_div 8, lvt-tiny 2 x 8 x 7^2 x (2 x 32)", attrs(2, 32, 1, 7, 1, 8, 1, 0), 2, 8,
         DataType::kFLOAT},
        {"fp32 temporal, lvt-base 1 x 16 x 17^2 x (8 x 64)", attrs(8, 64, 0, 17, 1, 4, 1, 0), 1, 16, DataType::kFLOAT},
        {"fp32 spatial, lvt-base 1 x 16 x 17^2 x (8 x 64)", attrs(8, 64, 1, 17, 1, 4, 1, 0), 1, 16, DataType::kFLOAT},
        {"fp16 spatial, lvt-base 1 x 16 x 17^2 x (8 x 64)", attrs(8, 64, 1, 17, 1, 4, 1, 0), 1, 16, DataType::kHALF},
        {"fp16 temporal, separate gates, 2 x 8 x 7^2 x (2 x 32)", attrs(2, 32, 0, 7, 1, 4, 2, 1), 2, 8, DataType::kHALF},
    };
    uint32_t seed = 1;
    for (GpuCase const& c : cases) testEnqueueOnGpu(cx, c, seed++, std::strstr(c.what, "lvt-base") != nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PATH/liblvt_edge_ffla_trtMAJOR.so\n", argv[0]);
        return 2;
    }
    std::printf("TensorRT headers %d.%d.%d, plugin library %s\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR,
                NV_TENSORRT_PATCH, argv[1]);
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (check(lib != nullptr, std::string("dlopen ") + argv[1] + (lib ? "" : std::string(": ") + dlerror()))) {
        Context cx;
        testLibrary(cx, lib);
        if (cx.creator != nullptr) {
            testCreator(cx);
            testCreatePlugin(cx);
            testBadAttributes(cx);
            testBuildPhase(cx);
            testRuntimePhase(cx);
            testEnqueue(cx);
        }
        // The library stays loaded, as TensorRT keeps plugin libraries until the registry goes.
    }
    std::printf("%d passed, %d failed\n", gPassed, gFailed);
    return gFailed == 0 ? 0 : 1;
}
