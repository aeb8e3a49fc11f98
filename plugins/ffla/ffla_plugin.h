// TensorRT IPluginV3 glue for the lvt_edge::FFLinearAttention node (README.md in this folder is
// its specification). The arithmetic lives behind ffla_launch.h; this file only speaks TensorRT.
//
// Built once per TensorRT major (the 10.x and 11.x ILogger/ILoggerFinder layouts differ) into
// liblvt_edge_ffla_trt<MAJOR>.so, which exports getCreators and setLoggerFinder only.
#pragma once

#include <NvInferRuntime.h>

#include <string>
#include <vector>

#include "ffla_params.h"

namespace lvt_edge {
namespace ffla {

class FFLinearAttentionPlugin final : public nvinfer1::IPluginV3,
                                      public nvinfer1::IPluginV3OneCore,
                                      public nvinfer1::IPluginV3OneBuild,
                                      public nvinfer1::IPluginV3OneRuntime {
public:
    // `attrs` holds validated attributes (FFLinearAttentionPluginCreator::createPlugin checks them).
    FFLinearAttentionPlugin(std::string name, Params const& attrs);
    FFLinearAttentionPlugin(FFLinearAttentionPlugin const& other);
    FFLinearAttentionPlugin& operator=(FFLinearAttentionPlugin const&) = delete;
    ~FFLinearAttentionPlugin() override = default;

    Params const& params() const noexcept { return mParams; }

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
                            nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs,
                            nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs,
                            int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void bindSerializedFields();

    std::string mName;
    Params mParams;  // attributes; frames and batch follow the last shapes seen
    std::string mIdentity;  // attributes as text: timing-cache ID and engine-inspector metadata
    int32_t mFormatVersion;
    std::vector<nvinfer1::PluginField> mSerializedFields;  // point into this object's members
    nvinfer1::PluginFieldCollection mSerialized{};
};

class FFLinearAttentionPluginCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    FFLinearAttentionPluginCreator();

    nvinfer1::IPluginV3* createPlugin(nvinfer1::AsciiChar const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::AsciiChar const* getPluginName() const noexcept override;
    nvinfer1::AsciiChar const* getPluginVersion() const noexcept override;
    nvinfer1::AsciiChar const* getPluginNamespace() const noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

}  // namespace ffla
}  // namespace lvt_edge

// The plugin library's entry points, as TensorRT's IPluginRegistry::loadLibrary (trtexec
// --dynamicPlugins, trt.get_plugin_registry().load_library) looks them up.
extern "C" {
__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators) noexcept;
__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
}
