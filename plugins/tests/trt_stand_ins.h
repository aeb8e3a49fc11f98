// Stand-ins for the objects TensorRT hands to a plugin, so a plugin library can be driven
// through its IPluginV3 interfaces without TensorRT's libraries (only its headers).
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace lvt_edge {
namespace trt_test {

namespace trt = nvinfer1;

// Keeps every message; the checks ask whether an error was logged after a mark.
class RecordingLogger final : public trt::ILogger {
public:
    using Severity = trt::ILogger::Severity;

    void log(Severity severity, trt::AsciiChar const* msg) noexcept override {
        std::lock_guard<std::mutex> lock(mMutex);
        mEntries.push_back({severity, msg ? msg : ""});
    }
    size_t mark() {
        std::lock_guard<std::mutex> lock(mMutex);
        return mEntries.size();
    }
    // The first error logged after `mark`, or "" when none was.
    std::string errorSince(size_t mark) {
        std::lock_guard<std::mutex> lock(mMutex);
        for (size_t i = mark; i < mEntries.size(); ++i) {
            if (mEntries[i].severity <= Severity::kERROR) return mEntries[i].text;
        }
        return "";
    }

private:
    struct Entry {
        Severity severity;
        std::string text;
    };
    std::mutex mMutex;
    std::vector<Entry> mEntries;
};

class StandInLoggerFinder final : public trt::ILoggerFinder {
public:
    explicit StandInLoggerFinder(trt::ILogger* logger) : mLogger(logger) {}
    trt::ILogger* findLogger() override { return mLogger; }

private:
    trt::ILogger* mLogger;
};

// IDimensionExpr and IExprBuilder are thin wrappers over apiv::VDimensionExpr / VExprBuilder
// (NvInferImpl.h): implementing those gives expressions getOutputShapes can use. A symbol stands
// for an extent known only at run time (the batch).
class ExprValue final : public trt::apiv::VDimensionExpr {
public:
    ExprValue(bool constant, int64_t value) : mConstant(constant), mValue(value) {}
    bool isConstant() const override { return mConstant; }
    int64_t getConstantValue() const override { return mConstant ? mValue : std::numeric_limits<int64_t>::min(); }
    bool isSizeTensor() const override { return false; }

private:
    bool mConstant;
    int64_t mValue;
};

class StandInExpr final : public trt::IDimensionExpr {
public:
    StandInExpr(bool constant, int64_t value, std::string text) : mValue(constant, value), mText(std::move(text)) {
        mImpl = &mValue;
    }
    ~StandInExpr() override = default;
    std::string const& text() const { return mText; }

private:
    ExprValue mValue;
    std::string mText;
};

class ExprBuilderImpl final : public trt::apiv::VExprBuilder {
public:
    trt::IDimensionExpr const* constant(int64_t value) override { return make(true, value, std::to_string(value)); }

    trt::IDimensionExpr const* operation(trt::DimensionOperation op, trt::IDimensionExpr const& first,
                                        trt::IDimensionExpr const& second) override {
        static char const* const names[] = {"+", "*", "max", "min", "-", "==", "<", "//", "ceildiv"};
        int32_t const index = static_cast<int32_t>(op);
        if (index < 0 || index >= 9) return nullptr;
        std::string const text = "(" + static_cast<StandInExpr const&>(first).text() + " " + names[index] + " " +
                                 static_cast<StandInExpr const&>(second).text() + ")";
        if (!first.isConstant() || !second.isConstant()) return make(false, 0, text);
        int64_t const a = first.getConstantValue();
        int64_t const b = second.getConstantValue();
        switch (op) {
            case trt::DimensionOperation::kSUM: return make(true, a + b, text);
            case trt::DimensionOperation::kPROD: return make(true, a * b, text);
            case trt::DimensionOperation::kMAX: return make(true, a > b ? a : b, text);
            case trt::DimensionOperation::kMIN: return make(true, a < b ? a : b, text);
            case trt::DimensionOperation::kSUB: return make(true, a - b, text);
            case trt::DimensionOperation::kEQUAL: return make(true, a == b, text);
            case trt::DimensionOperation::kLESS: return make(true, a < b, text);
            case trt::DimensionOperation::kFLOOR_DIV:
                if (b == 0) return nullptr;
                return make(true, a / b - ((a % b != 0) && ((a < 0) != (b < 0))), text);
            case trt::DimensionOperation::kCEIL_DIV:
                if (b == 0) return nullptr;
                return make(true, a / b + ((a % b != 0) && ((a < 0) == (b < 0))), text);
        }
        return nullptr;
    }

    trt::IDimensionExpr const* declareSizeTensor(int32_t, trt::IDimensionExpr const&, trt::IDimensionExpr const&) override {
        return nullptr;  // FFLinearAttention has no size-tensor outputs
    }

    StandInExpr const* symbol(std::string name) { return make(false, 0, std::move(name)); }

private:
    StandInExpr const* make(bool constant, int64_t value, std::string text) {
        mPool.push_back(std::make_unique<StandInExpr>(constant, value, std::move(text)));
        return mPool.back().get();
    }
    std::vector<std::unique_ptr<StandInExpr>> mPool;
};

class StandInExprBuilder final : public trt::IExprBuilder {
public:
    StandInExprBuilder() { mImpl = &mBuilder; }
    ~StandInExprBuilder() override = default;
    StandInExpr const* symbol(std::string name) { return mBuilder.symbol(std::move(name)); }
    trt::IDimensionExpr const* value(int64_t v) { return mBuilder.constant(v); }

private:
    ExprBuilderImpl mBuilder;
};

class StandInResourceContext final : public trt::IPluginResourceContext {
public:
    trt::IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
    trt::IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
};

}  // namespace trt_test
}  // namespace lvt_edge
