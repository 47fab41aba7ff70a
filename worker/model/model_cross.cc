#include "worker/model/model_cross.h"

#include <utility>

#include "common/status_macros.h"
#include "glog/logging.h"

namespace ps {

CrossNet::CrossNet(std::vector<CrossLayerSpec> layers, Backend* backend)
    : layers_(std::move(layers)),
      width_(layers_.empty() ? 0 : layers_[0].width),
      backend_(backend),
      xs_(layers_.size()),
      xw_(layers_.size()) {
  for (const CrossLayerSpec& layer : layers_) CHECK_EQ(layer.width, width_);
}

absl::Status CrossNet::Reserve(int batch) {
  if (layers_.empty()) return absl::OkStatus();
  const int64_t size = static_cast<int64_t>(batch) * width_;
  for (int l = 0; l < num_layers(); ++l) {
    RETURN_IF_ERROR(xs_[l].Reserve(backend_, size));
    RETURN_IF_ERROR(xw_[l].Reserve(backend_, batch));
  }
  RETURN_IF_ERROR(d_a_.Reserve(backend_, size));
  return d_b_.Reserve(backend_, size);
}

const float* CrossNet::Forward(int batch, const float* x0,
                               const float* params) {
  const float* x = x0;
  for (int l = 0; l < num_layers(); ++l) {
    const CrossLayerSpec& layer = layers_[l];
    backend_->CrossForward(batch, width_, x0, x, params + layer.weight_offset,
                           params + layer.bias_offset, xw_[l].data(),
                           xs_[l].data());
    x = xs_[l].data();
  }
  return x;
}

void CrossNet::Backward(int batch, const float* x0, const float* params,
                        const float* d_out, float* d_x0, float* dense_grad) {
  const float* d_next = d_out;  // the gradient by x_{l+1}
  for (int l = num_layers() - 1; l >= 0; --l) {
    const CrossLayerSpec& layer = layers_[l];
    float* d_x = d_next == d_a_.data() ? d_b_.data() : d_a_.data();
    const float* x = l == 0 ? x0 : xs_[l - 1].data();
    backend_->CrossBackward(batch, width_, x0, x, params + layer.weight_offset,
                            xw_[l].data(), d_next, d_x0, d_x,
                            dense_grad + layer.weight_offset,
                            dense_grad + layer.bias_offset);
    d_next = d_x;
  }
  // x_0 is x0: the gradient that reached it joins d_x0.
  const BlockLayout packed{width_, 0};
  backend_->CopyBlocks(batch, 1, width_, d_next, packed, d_x0, packed, true);
}

}  // namespace ps
